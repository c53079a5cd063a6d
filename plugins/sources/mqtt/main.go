// Command source.mqtt is Eddy's MQTT source plugin: it subscribes to an
// installation's topic filters and brings each message in as a Segment
// track event. A message is acknowledged to the broker only after Eddy
// has queued its event (manual acks, QoS 1, a persistent session), so a
// message the broker delivered is never lost, though it may come twice.
//
// config.go checks an installation's configuration, message.go turns an
// MQTT message into a Segment message, and this file runs the
// installations.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	paho "github.com/eclipse/paho.mqtt.golang"
	"github.com/eclipse/paho.mqtt.golang/packets"

	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

func main() { eddyplugin.Serve(newSource(eddyplugin.Logger())) }

// Timings of the connection to the broker.
const (
	connectTimeout = 10 * time.Second
	keepAlive      = 30 * time.Second
	quiesce        = 250 // ms the client may take to finish its work when disconnecting
	retryMin       = 100 * time.Millisecond
	retryMax       = 5 * time.Second
)

// source serves every installation of the plugin.
type source struct {
	log *slog.Logger

	mu       sync.Mutex
	installs map[string]*installation
}

// installation is one configured installation.
type installation struct {
	id  string
	cfg *config
	// slot is held by the installation's run: a second Run waits for the
	// first to end, since the broker lets one client per client id in.
	slot chan struct{}
	// stop cancels the run in progress, if any; guarded by source.mu.
	stop context.CancelFunc
}

var _ eddyplugin.Source = (*source)(nil)

func newSource(log *slog.Logger) *source {
	return &source{log: log, installs: map[string]*installation{}}
}

// Init checks and records an installation's configuration. Initialising
// a running installation again stops its run, so that Eddy runs it anew
// with the new configuration.
func (s *source) Init(_ context.Context, in eddyplugin.Installation) error {
	if in.ID == "" {
		return errors.New("installation id is empty")
	}
	cfg, err := parseConfig(in.ID, in.Config)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	slot := make(chan struct{}, 1)
	if old := s.installs[in.ID]; old != nil {
		if old.stop != nil {
			old.stop()
		}
		slot = old.slot // the next run waits for the old one to disconnect
	}
	s.installs[in.ID] = &installation{id: in.ID, cfg: cfg, slot: slot}
	s.log.Info("installation initialised", "installation", in.ID, "broker", cfg.broker, "topics", cfg.topics, "qos", cfg.qos)
	return nil
}

// Validate connects to the broker with the installation's credentials
// (as a separate, clean-session client, so as not to disturb the
// installation's session).
func (s *source) Validate(ctx context.Context, id string) ([]eddyplugin.FieldError, error) {
	in, err := s.installation(id)
	if err != nil {
		return nil, err
	}
	opts := in.cfg.clientOptions()
	opts.SetClientID(in.cfg.clientID + "-check").SetCleanSession(true).SetAutoReconnect(false)
	client := paho.NewClient(opts)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil, fmt.Errorf("validate installation %s: %w", id, ctx.Err())
	}
	if err := tok.Error(); err != nil {
		field := "config.broker"
		if errors.Is(err, packets.ErrorRefusedNotAuthorised) || errors.Is(err, packets.ErrorRefusedBadUsernameOrPassword) {
			field = "config.username"
		}
		return []eddyplugin.FieldError{{Field: field, Message: "the broker refused the connection: " + err.Error()}}, nil
	}
	client.Disconnect(quiesce)
	return nil, nil
}

// Close stops the installation's run, if any, and forgets it. It is safe
// for an installation that was never initialised.
func (s *source) Close(ctx context.Context, id string) error {
	s.mu.Lock()
	in := s.installs[id]
	delete(s.installs, id)
	if in != nil && in.stop != nil {
		in.stop()
	}
	s.mu.Unlock()
	if in == nil {
		return nil
	}
	// Wait for the run to disconnect.
	select {
	case in.slot <- struct{}{}:
		<-in.slot
		return nil
	case <-ctx.Done():
		return fmt.Errorf("close installation %s: %w", id, ctx.Err())
	}
}

func (s *source) installation(id string) (*installation, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	in := s.installs[id]
	if in == nil {
		return nil, fmt.Errorf("installation %s is not initialised", id)
	}
	return in, nil
}

// Run subscribes to the installation's topics and emits their messages
// until ctx ends, then disconnects; messages not yet acknowledged stay
// with the broker.
func (s *source) Run(ctx context.Context, id string, emit eddyplugin.Emitter) error {
	in, err := s.installation(id)
	if err != nil {
		return err
	}
	select {
	case in.slot <- struct{}{}:
		defer func() { <-in.slot }()
	case <-ctx.Done():
		return nil
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.mu.Lock()
	if s.installs[id] != in {
		s.mu.Unlock()
		return fmt.Errorf("installation %s was closed or initialised again", id)
	}
	in.stop = cancel
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		in.stop = nil
		s.mu.Unlock()
	}()
	r := &run{cfg: in.cfg, emit: emit, log: s.log.With("installation", id, "client_id", in.cfg.clientID),
		received: make(chan received, in.cfg.batchSize)}
	return r.run(ctx)
}

// clientOptions are the paho options shared by runs and checks.
func (c *config) clientOptions() *paho.ClientOptions {
	opts := paho.NewClientOptions().AddBroker(c.broker).SetClientID(c.clientID).
		SetConnectTimeout(connectTimeout).SetKeepAlive(keepAlive)
	if c.username != "" {
		opts.SetUsername(c.username).SetPassword(c.password)
	}
	return opts
}

// received is a message as it arrived.
type received struct {
	msg paho.Message
	at  time.Time
}

// pending is a message built into a Segment message, awaiting Eddy's
// acknowledgement.
type pending struct {
	msg     paho.Message
	segment []byte
}

// run is one Run of an installation.
type run struct {
	cfg      *config
	emit     eddyplugin.Emitter
	log      *slog.Logger
	received chan received
	done     <-chan struct{} // closed when the run ends
}

func (r *run) run(ctx context.Context) error {
	r.done = ctx.Done()
	subscribed := make(chan error, 1)
	opts := r.cfg.clientOptions().
		// A message is acknowledged only once Eddy has queued it; QoS 1
		// needs a persistent session for the broker to keep unacknowledged
		// and new messages while Eddy is away.
		SetAutoAckDisabled(true).SetCleanSession(r.cfg.qos == 0).
		// Handlers run in their own goroutines and may block: that is the
		// back-pressure when Eddy is slower than the broker.
		SetOrderMatters(false).
		// Messages the broker kept for the session arrive before any
		// subscription is made again.
		SetDefaultPublishHandler(func(_ paho.Client, m paho.Message) { r.handle(m) }).
		SetAutoReconnect(true).
		SetOnConnectHandler(func(c paho.Client) {
			err := r.subscribe(c)
			if err != nil {
				r.log.Error("subscribe", "error", err)
			}
			select {
			case subscribed <- err:
			default:
			}
		}).
		SetConnectionLostHandler(func(_ paho.Client, err error) {
			r.log.Warn("connection to the broker lost; reconnecting", "broker", r.cfg.broker, "error", err)
		})
	client := paho.NewClient(opts)
	defer client.Disconnect(quiesce)
	tok := client.Connect()
	select {
	case <-tok.Done():
	case <-ctx.Done():
		return nil
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("connect to %s: %w", r.cfg.broker, err)
	}
	select {
	case err := <-subscribed:
		if err != nil {
			return err
		}
	case <-ctx.Done():
		return nil
	}
	r.log.Info("subscribed", "broker", r.cfg.broker, "topics", r.cfg.topics)

	var batch []pending
	flush := time.NewTimer(time.Hour)
	flush.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case m := <-r.received:
			b, err := r.cfg.toTrack(m.msg.Topic(), m.msg.Payload(), m.at)
			if err != nil { // cannot happen with these types; never ack it blindly
				return err
			}
			batch = append(batch, pending{msg: m.msg, segment: b})
			if len(batch) == 1 {
				flush.Reset(r.cfg.flushAfter)
			}
			if len(batch) < r.cfg.batchSize {
				continue
			}
		case <-flush.C:
		}
		flush.Stop()
		if err := r.deliver(ctx, batch); err != nil {
			return nil // ctx ended: the batch stays unacknowledged with the broker
		}
		batch = batch[:0]
	}
}

// subscribe makes the installation's subscriptions, and checks the
// broker granted each.
func (r *run) subscribe(c paho.Client) error {
	filters := make(map[string]byte, len(r.cfg.topics))
	for _, t := range r.cfg.topics {
		filters[t] = r.cfg.qos
	}
	tok := c.SubscribeMultiple(filters, func(_ paho.Client, m paho.Message) { r.handle(m) })
	if !tok.WaitTimeout(connectTimeout) {
		return fmt.Errorf("subscribe to %v: no answer from the broker within %s", r.cfg.topics, connectTimeout)
	}
	if err := tok.Error(); err != nil {
		return fmt.Errorf("subscribe to %v: %w", r.cfg.topics, err)
	}
	st, ok := tok.(*paho.SubscribeToken)
	if !ok {
		return nil
	}
	for topic, code := range st.Result() {
		if code == 0x80 {
			return fmt.Errorf("subscribe to %s: refused by the broker", topic)
		}
	}
	return nil
}

// handle queues an arriving message for the next batch. A message on a
// topic the installation no longer subscribes to (the broker keeps a
// persistent session's old subscriptions) is acknowledged and dropped.
func (r *run) handle(m paho.Message) {
	if !r.cfg.matches(m.Topic()) {
		r.log.Warn("message on a topic the installation does not subscribe to; dropped", "topic", m.Topic())
		m.Ack()
		return
	}
	select {
	case r.received <- received{msg: m, at: time.Now()}:
	case <-r.done:
		// Not acknowledged: the broker delivers it again.
	}
}

// matches reports whether topic matches one of the installation's filters.
func (c *config) matches(topic string) bool {
	for _, f := range c.topics {
		if matchFilter(f, topic) {
			return true
		}
	}
	return false
}

// deliver emits a batch until Eddy acknowledges it, then acknowledges its
// messages to the broker, those Eddy refused included (they would be
// refused again). It fails only when ctx ends; the same Segment messages,
// ids included, are emitted again after a failure.
func (r *run) deliver(ctx context.Context, batch []pending) error {
	segments := make([][]byte, len(batch))
	for i, p := range batch {
		segments[i] = p.segment
	}
	wait := retryMin
	for {
		rejected, err := r.emit.Emit(ctx, segments)
		if err == nil {
			for _, rj := range rejected {
				r.log.Warn("message refused by Eddy", "message_id", rj.MessageID, "reason", rj.Reason)
			}
			for _, p := range batch {
				p.msg.Ack()
			}
			r.log.Debug("batch delivered", "messages", len(batch), "rejected", len(rejected))
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		r.log.Warn("emit failed; retrying", "messages", len(batch), "error", err, "retry_in", wait)
		select {
		case <-time.After(wait):
		case <-ctx.Done():
			return ctx.Err()
		}
		wait = min(2*wait, retryMax)
	}
}
