// Package consent is Eddy's consent model: what a visitor allowed, what a
// workspace requires, and what is removed from events before they are kept.
//
// Events carry consent as Segment's consent context does:
// context.consent.categoryPreferences maps a purpose ("analytics",
// "marketing"...) to true or false. [Parse] reads it from a message and its
// batch envelope (the message's context keys win), refusing malformed
// objects with an [*Error] that names the field and never echoes a value.
//
// A workspace's [Policy] lists its purposes, the purposes processing needs
// at all ([Policy.Process]) and the extra purposes each plugin needs
// ([Policy.Plugin]); the purpose "necessary" is always granted. The
// decisions return stable reason codes, counted by [RefusedTotal].
//
// [Minimise] is the workspace's data minimisation, applied before storage:
// IP truncation or removal, and hashing or dropping of configured paths of
// the message JSON. It edits the JSON in place, so every other byte of the
// message stays as the client sent it.
package consent
