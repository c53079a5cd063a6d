package eddyplugin

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	goplugin "github.com/hashicorp/go-plugin"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	pb "github.com/eddy-cdp/eddy/sdk/proto/eddy/plugin/v1"
)

// Handshake is the go-plugin handshake Eddy and its plugins share. The
// cookie only keeps a plugin binary from being run by hand by mistake; it
// is not a security measure.
var Handshake = goplugin.HandshakeConfig{
	ProtocolVersion:  ProtocolVersion,
	MagicCookieKey:   "EDDY_PLUGIN",
	MagicCookieValue: "5b3c0c0e-eddy-plugin",
}

// PluginName is the name a plugin is dispensed under.
const PluginName = "plugin"

// GRPCPlugin is the go-plugin glue: on the plugin's side it serves Impl,
// on Eddy's it returns a *Client.
type GRPCPlugin struct {
	goplugin.NetRPCUnsupportedPlugin
	Impl Plugin
}

var _ goplugin.GRPCPlugin = (*GRPCPlugin)(nil)

// GRPCServer registers the services Impl implements.
func (p *GRPCPlugin) GRPCServer(_ *goplugin.GRPCBroker, s *grpc.Server) error {
	pb.RegisterLifecycleServer(s, &lifecycleServer{impl: p.Impl})
	if proc, ok := p.Impl.(Processor); ok {
		pb.RegisterProcessorServer(s, &processorServer{impl: proc})
	}
	if sink, ok := p.Impl.(Sink); ok {
		pb.RegisterSinkServer(s, &sinkServer{impl: sink})
	}
	if src, ok := p.Impl.(Source); ok {
		pb.RegisterSourceServer(s, &sourceServer{impl: src, waiting: map[string]*waitingBatch{}})
	}
	if app, ok := p.Impl.(App); ok {
		pb.RegisterAppServer(s, &appServer{impl: app})
	}
	return nil
}

// GRPCClient returns the host's view of the plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{lifecycle: pb.NewLifecycleClient(c), processor: pb.NewProcessorClient(c), sink: pb.NewSinkClient(c),
		source: pb.NewSourceClient(c), app: pb.NewAppClient(c)}, nil
}

// toStatus keeps a plugin's error message for the host.
func toStatus(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	return status.Error(codes.Unknown, err.Error())
}

type lifecycleServer struct {
	pb.UnimplementedLifecycleServer
	impl Plugin
}

func (s *lifecycleServer) Init(ctx context.Context, r *pb.InitRequest) (*pb.InitResponse, error) {
	err := s.impl.Init(ctx, Installation{ID: r.GetInstallationId(), PluginID: r.GetPluginId(), WorkspaceID: r.GetWorkspaceId(), Config: r.GetConfigJson()})
	return &pb.InitResponse{}, toStatus(err)
}

func (s *lifecycleServer) Validate(ctx context.Context, r *pb.ValidateRequest) (*pb.ValidateResponse, error) {
	errs, err := s.impl.Validate(ctx, r.GetInstallationId())
	out := &pb.ValidateResponse{}
	for _, e := range errs {
		out.Errors = append(out.Errors, &pb.FieldError{Field: e.Field, Message: e.Message})
	}
	return out, toStatus(err)
}

func (s *lifecycleServer) Close(ctx context.Context, r *pb.CloseRequest) (*pb.CloseResponse, error) {
	return &pb.CloseResponse{}, toStatus(s.impl.Close(ctx, r.GetInstallationId()))
}

type processorServer struct {
	pb.UnimplementedProcessorServer
	impl Processor
}

func (s *processorServer) Process(ctx context.Context, b *pb.Batch) (*pb.ProcessResponse, error) {
	kept, rejected, err := s.impl.Process(ctx, b.GetInstallationId(), fromPB(b.GetEvents()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.ProcessResponse{Events: toPB(kept), Rejected: rejectionsToPB(rejected)}, nil
}

type sinkServer struct {
	pb.UnimplementedSinkServer
	impl Sink
}

func (s *sinkServer) Write(ctx context.Context, b *pb.Batch) (*pb.WriteResponse, error) {
	res, err := s.impl.Write(ctx, b.GetInstallationId(), fromPB(b.GetEvents()))
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.WriteResponse{Retry: res.Retry, Rejected: rejectionsToPB(res.Rejected)}
	if res.RetryAfter > 0 {
		out.RetryAfter = durationpb.New(res.RetryAfter)
	}
	return out, nil
}

func (s *sinkServer) Delete(ctx context.Context, r *pb.DeleteRequest) (*pb.DeleteResponse, error) {
	d, ok := s.impl.(Deleter)
	if !ok {
		return nil, status.Error(codes.Unimplemented, "this sink does not delete (it implements no Delete)")
	}
	del := Deletion{JobID: r.GetJobId(), Identities: make([]Identity, len(r.GetIdentities()))}
	for i, id := range r.GetIdentities() {
		del.Identities[i] = Identity{Kind: id.GetKind(), Value: id.GetValue()}
	}
	res, err := d.Delete(ctx, r.GetInstallationId(), del)
	if err != nil {
		return nil, toStatus(err)
	}
	out := &pb.DeleteResponse{Retry: res.Retry, Rejected: res.Rejected}
	if res.RetryAfter > 0 {
		out.RetryAfter = durationpb.New(res.RetryAfter)
	}
	return out, nil
}

// sourceServer runs a Source: each Run is one server stream of batches,
// and each batch waits in waiting until Eddy acknowledges it with Ack.
type sourceServer struct {
	pb.UnimplementedSourceServer
	impl Source

	mu      sync.Mutex
	waiting map[string]*waitingBatch // by batch id
}

// waitingBatch is an emitted batch waiting for Eddy's Ack.
type waitingBatch struct {
	installationID string
	acked          chan []Rejection // buffered: Ack never blocks
}

func (s *sourceServer) Run(r *pb.RunRequest, stream grpc.ServerStreamingServer[pb.SourceBatch]) error {
	e := &streamEmitter{server: s, stream: stream, installationID: r.GetInstallationId()}
	return toStatus(s.impl.Run(stream.Context(), r.GetInstallationId(), e))
}

func (s *sourceServer) Ack(_ context.Context, r *pb.AckRequest) (*pb.AckResponse, error) {
	s.mu.Lock()
	b, ok := s.waiting[r.GetBatchId()]
	if ok && b.installationID == r.GetInstallationId() {
		delete(s.waiting, r.GetBatchId())
	}
	s.mu.Unlock()
	switch {
	case !ok:
		return nil, status.Errorf(codes.NotFound, "batch %q is not waiting for an ack (its emit has ended)", r.GetBatchId())
	case b.installationID != r.GetInstallationId():
		return nil, status.Errorf(codes.InvalidArgument, "batch %q belongs to another installation than %q", r.GetBatchId(), r.GetInstallationId())
	}
	b.acked <- rejectionsFromPB(r.GetRejected())
	return &pb.AckResponse{}, nil
}

// streamEmitter is the Emitter of one Run.
type streamEmitter struct {
	server         *sourceServer
	stream         grpc.ServerStreamingServer[pb.SourceBatch]
	installationID string
	sendMu         sync.Mutex // a stream's Send is not safe for concurrent use
}

func (e *streamEmitter) Emit(ctx context.Context, messages [][]byte) ([]Rejection, error) {
	if len(messages) == 0 {
		return nil, nil
	}
	run := e.stream.Context()
	if err := run.Err(); err != nil {
		return nil, fmt.Errorf("emit: the run has ended: %w", err)
	}
	id := rand.Text()
	b := &waitingBatch{installationID: e.installationID, acked: make(chan []Rejection, 1)}
	e.server.mu.Lock()
	e.server.waiting[id] = b
	e.server.mu.Unlock()
	defer func() {
		e.server.mu.Lock()
		delete(e.server.waiting, id)
		e.server.mu.Unlock()
	}()
	e.sendMu.Lock()
	err := e.stream.Send(&pb.SourceBatch{BatchId: id, Messages: messages})
	e.sendMu.Unlock()
	if err != nil {
		return nil, fmt.Errorf("emit a batch of %d messages: %w", len(messages), err)
	}
	select {
	case rejected := <-b.acked:
		return rejected, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("emit: waiting for the ack: %w", ctx.Err())
	case <-run.Done():
		return nil, fmt.Errorf("emit: the run ended before the ack: %w", run.Err())
	}
}

type appServer struct {
	pb.UnimplementedAppServer
	impl App
}

func (s *appServer) OnEvents(ctx context.Context, b *pb.Batch) (*pb.Actions, error) {
	actions, err := s.impl.OnEvents(ctx, b.GetInstallationId(), fromPB(b.GetEvents()))
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Actions{Actions: actionsToPB(actions)}, nil
}

func (s *appServer) OnSessions(ctx context.Context, b *pb.SessionBatch) (*pb.Actions, error) {
	changes := make([]SessionChange, len(b.GetChanges()))
	for i, c := range b.GetChanges() {
		changes[i] = SessionChange{Kind: c.GetKind(), Session: c.GetSessionJson()}
	}
	actions, err := s.impl.OnSessions(ctx, b.GetInstallationId(), changes)
	if err != nil {
		return nil, toStatus(err)
	}
	return &pb.Actions{Actions: actionsToPB(actions)}, nil
}

// Client is Eddy's side of a plugin process.
type Client struct {
	lifecycle pb.LifecycleClient
	processor pb.ProcessorClient
	sink      pb.SinkClient
	source    pb.SourceClient
	app       pb.AppClient
}

// Init configures an installation.
func (c *Client) Init(ctx context.Context, in Installation) error {
	_, err := c.lifecycle.Init(ctx, &pb.InitRequest{InstallationId: in.ID, PluginId: in.PluginID, WorkspaceId: in.WorkspaceID, ConfigJson: in.Config})
	return fromStatus("init", err)
}

// Validate runs the plugin's own checks of an installation.
func (c *Client) Validate(ctx context.Context, installationID string) ([]FieldError, error) {
	r, err := c.lifecycle.Validate(ctx, &pb.ValidateRequest{InstallationId: installationID})
	if err != nil {
		return nil, fromStatus("validate", err)
	}
	out := make([]FieldError, 0, len(r.GetErrors()))
	for _, e := range r.GetErrors() {
		out = append(out, FieldError{Field: e.GetField(), Message: e.GetMessage()})
	}
	return out, nil
}

// Close releases an installation.
func (c *Client) Close(ctx context.Context, installationID string) error {
	_, err := c.lifecycle.Close(ctx, &pb.CloseRequest{InstallationId: installationID})
	return fromStatus("close", err)
}

// Process runs a processor on a batch.
func (c *Client) Process(ctx context.Context, installationID string, events []Event) ([]Event, []Rejection, error) {
	r, err := c.processor.Process(ctx, &pb.Batch{InstallationId: installationID, Events: toPB(events)})
	if err != nil {
		return nil, nil, fromStatus("process", err)
	}
	return fromPB(r.GetEvents()), rejectionsFromPB(r.GetRejected()), nil
}

// Write hands a batch to a sink.
func (c *Client) Write(ctx context.Context, installationID string, events []Event) (WriteResult, error) {
	r, err := c.sink.Write(ctx, &pb.Batch{InstallationId: installationID, Events: toPB(events)})
	if err != nil {
		return WriteResult{}, fromStatus("write", err)
	}
	return WriteResult{Retry: r.GetRetry(), Rejected: rejectionsFromPB(r.GetRejected()), RetryAfter: r.GetRetryAfter().AsDuration()}, nil
}

// ErrDeleteUnsupported is returned by Delete when the plugin implements
// no Delete.
var ErrDeleteUnsupported = errors.New("the plugin does not implement Delete")

// Delete asks a sink to forget a person. A plugin that implements no
// Delete gives ErrDeleteUnsupported.
func (c *Client) Delete(ctx context.Context, installationID string, d Deletion) (DeleteResult, error) {
	req := &pb.DeleteRequest{InstallationId: installationID, JobId: d.JobID, Identities: make([]*pb.Identity, len(d.Identities))}
	for i, id := range d.Identities {
		req.Identities[i] = &pb.Identity{Kind: id.Kind, Value: id.Value}
	}
	r, err := c.sink.Delete(ctx, req)
	if err != nil {
		if status.Code(err) == codes.Unimplemented {
			return DeleteResult{}, fmt.Errorf("plugin delete: %w", ErrDeleteUnsupported)
		}
		return DeleteResult{}, fromStatus("delete", err)
	}
	return DeleteResult{Retry: r.GetRetry(), Rejected: r.GetRejected(), RetryAfter: r.GetRetryAfter().AsDuration()}, nil
}

// SourceHandler queues a batch of a source's messages (Segment messages as
// JSON) and returns those it refuses for good, each named by its
// messageId with the reason. It returns an error when the batch could not
// be queued: the batch is then not acknowledged.
type SourceHandler func(ctx context.Context, messages [][]byte) (rejected []Rejection, err error)

// RunSource runs a source installation: it receives each batch the plugin
// emits, hands it to handle and acknowledges it with handle's rejections,
// one batch at a time. It returns nil when ctx ends or the source stops by
// itself. When handle fails, RunSource ends the run without acknowledging
// the batch and returns handle's error: the plugin's Emit fails, so the
// plugin does not acknowledge its upstream, which delivers the messages
// again when Eddy runs the source anew.
func (c *Client) RunSource(ctx context.Context, installationID string, handle SourceHandler) error {
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // ends the stream, and so the plugin's Run
	stream, err := c.source.Run(ctx, &pb.RunRequest{InstallationId: installationID})
	if err != nil {
		return fromStatus("run", err)
	}
	for {
		b, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			if parent.Err() != nil {
				return nil
			}
			return fromStatus("run", err)
		}
		rejected, err := handle(ctx, b.GetMessages())
		if err != nil {
			return fmt.Errorf("source %s: batch of %d messages not acknowledged: %w", installationID, len(b.GetMessages()), err)
		}
		_, err = c.source.Ack(ctx, &pb.AckRequest{InstallationId: installationID, BatchId: b.GetBatchId(), Rejected: rejectionsToPB(rejected)})
		if err != nil {
			if parent.Err() != nil {
				return nil
			}
			return fromStatus("ack", err)
		}
	}
}

// OnEvents hands a batch of events to an app and returns its actions.
func (c *Client) OnEvents(ctx context.Context, installationID string, events []Event) ([]Action, error) {
	r, err := c.app.OnEvents(ctx, &pb.Batch{InstallationId: installationID, Events: toPB(events)})
	if err != nil {
		return nil, fromStatus("on events", err)
	}
	return actionsFromPB(r.GetActions()), nil
}

// OnSessions hands session changes to an app and returns its actions.
func (c *Client) OnSessions(ctx context.Context, installationID string, changes []SessionChange) ([]Action, error) {
	b := &pb.SessionBatch{InstallationId: installationID, Changes: make([]*pb.SessionChange, len(changes))}
	for i, ch := range changes {
		b.Changes[i] = &pb.SessionChange{Kind: ch.Kind, SessionJson: ch.Session}
	}
	r, err := c.app.OnSessions(ctx, b)
	if err != nil {
		return nil, fromStatus("on sessions", err)
	}
	return actionsFromPB(r.GetActions()), nil
}

// PluginError is an error the plugin returned (as opposed to a transport
// failure, such as a crashed plugin process).
type PluginError struct {
	Call, Message string
}

func (e *PluginError) Error() string { return fmt.Sprintf("plugin %s: %s", e.Call, e.Message) }

func fromStatus(call string, err error) error {
	if err == nil {
		return nil
	}
	if s, ok := status.FromError(err); ok && s.Code() == codes.Unknown {
		return &PluginError{Call: call, Message: s.Message()}
	}
	return fmt.Errorf("plugin %s: %w", call, err)
}

func toPB(events []Event) []*pb.Event {
	out := make([]*pb.Event, len(events))
	for i := range events {
		e := &events[i]
		out[i] = &pb.Event{MessageId: e.MessageID, WorkspaceId: e.WorkspaceID, SourceId: e.SourceID, Type: e.Type,
			Timestamp: ts(e.Timestamp), ReceivedAt: ts(e.ReceivedAt), Payload: e.Payload, BatchContext: e.BatchContext, Ip: e.IP}
	}
	return out
}

func fromPB(events []*pb.Event) []Event {
	out := make([]Event, len(events))
	for i, e := range events {
		out[i] = Event{MessageID: e.GetMessageId(), WorkspaceID: e.GetWorkspaceId(), SourceID: e.GetSourceId(), Type: e.GetType(),
			Timestamp: tm(e.GetTimestamp()), ReceivedAt: tm(e.GetReceivedAt()), Payload: e.GetPayload(), BatchContext: e.GetBatchContext(), IP: e.GetIp()}
	}
	return out
}

func ts(t time.Time) *timestamppb.Timestamp {
	if t.IsZero() {
		return nil
	}
	return timestamppb.New(t)
}

func tm(t *timestamppb.Timestamp) time.Time {
	if t == nil {
		return time.Time{}
	}
	return t.AsTime()
}

func rejectionsToPB(rs []Rejection) []*pb.Rejection {
	out := make([]*pb.Rejection, len(rs))
	for i, r := range rs {
		out[i] = &pb.Rejection{MessageId: r.MessageID, Reason: r.Reason}
	}
	return out
}

func rejectionsFromPB(rs []*pb.Rejection) []Rejection {
	out := make([]Rejection, len(rs))
	for i, r := range rs {
		out[i] = Rejection{MessageID: r.GetMessageId(), Reason: r.GetReason()}
	}
	return out
}

func actionsToPB(as []Action) []*pb.Action {
	out := make([]*pb.Action, len(as))
	for i, a := range as {
		out[i] = &pb.Action{Type: a.Type, AnonymousId: a.AnonymousID, UserId: a.UserID, DataJson: a.Data}
	}
	return out
}

func actionsFromPB(as []*pb.Action) []Action {
	out := make([]Action, len(as))
	for i, a := range as {
		out[i] = Action{Type: a.GetType(), AnonymousID: a.GetAnonymousId(), UserID: a.GetUserId(), Data: a.GetDataJson()}
	}
	return out
}
