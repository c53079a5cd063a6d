package live

// Announcement exposes announcement to the external tests.
var Announcement = announcement
