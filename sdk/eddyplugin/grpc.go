package eddyplugin

import (
	"context"
	"errors"
	"fmt"
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
	return nil
}

// GRPCClient returns the host's view of the plugin.
func (p *GRPCPlugin) GRPCClient(_ context.Context, _ *goplugin.GRPCBroker, c *grpc.ClientConn) (any, error) {
	return &Client{lifecycle: pb.NewLifecycleClient(c), processor: pb.NewProcessorClient(c), sink: pb.NewSinkClient(c)}, nil
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

// Client is Eddy's side of a plugin process.
type Client struct {
	lifecycle pb.LifecycleClient
	processor pb.ProcessorClient
	sink      pb.SinkClient
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
