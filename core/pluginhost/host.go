// Package pluginhost runs Eddy's gRPC plugins: each in its own process,
// started through hashicorp/go-plugin (gRPC only, mutual TLS with
// certificates made per start, managed so that CleanupClients stops them
// all at exit), with the plugin's stderr folded into Eddy's logs. A
// Supervisor keeps a plugin running: after a crash it restarts it with
// backoff and initialises its installations again.
package pluginhost

import (
	"errors"
	"fmt"
	"log/slog"
	"os/exec"
	"path/filepath"
	"time"

	goplugin "github.com/hashicorp/go-plugin"

	"github.com/eddy-cdp/eddy/core/plugin"
	"github.com/eddy-cdp/eddy/sdk/eddyplugin"
)

// Process is a running gRPC plugin.
type Process struct {
	*eddyplugin.Client
	m      *plugin.Manifest
	client *goplugin.Client
	rpc    goplugin.ClientProtocol
}

// startTimeout bounds a plugin's start and handshake.
const startTimeout = 10 * time.Second

// Start starts the plugin m describes and completes the handshake.
func Start(m *plugin.Manifest, log *slog.Logger) (*Process, error) {
	if m.Runtime != plugin.GRPC {
		return nil, fmt.Errorf("start %s: runtime %s is not grpc", m.ID, m.Runtime)
	}
	plog := log.With("plugin_id", m.ID, "plugin_version", m.Version)
	// Absolute: the command runs in the plugin's folder, which a relative
	// path would be resolved against a second time.
	bin, err := filepath.Abs(m.Artifact())
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", m.ID, err)
	}
	cmd := exec.Command(bin)
	// A plugin gets none of Eddy's environment (database URL, secrets):
	// only a search path. go-plugin adds what the handshake needs.
	cmd.Env = []string{"PATH=/usr/local/bin:/usr/bin:/bin"}
	cmd.Dir = m.Dir
	client := goplugin.NewClient(&goplugin.ClientConfig{
		HandshakeConfig: eddyplugin.Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			eddyplugin.ProtocolVersion: {eddyplugin.PluginName: &eddyplugin.GRPCPlugin{}},
		},
		Cmd:              cmd,
		AllowedProtocols: []goplugin.Protocol{goplugin.ProtocolGRPC},
		AutoMTLS:         true,
		Managed:          true,
		StartTimeout:     startTimeout,
		Logger:           newLogger(plog),
		// What the plugin writes to os.Stdout and os.Stderr once serving
		// (go-plugin streams them): plain lines.
		SyncStderr: &lineWriter{log: plog, msg: "plugin stderr", level: slog.LevelInfo},
		SyncStdout: &lineWriter{log: plog, msg: "plugin wrote to stdout", level: slog.LevelWarn},
	})
	rpc, err := client.Client()
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", m.ID, err)
	}
	raw, err := rpc.Dispense(eddyplugin.PluginName)
	if err != nil {
		client.Kill()
		return nil, fmt.Errorf("start %s: %w", m.ID, err)
	}
	c, ok := raw.(*eddyplugin.Client)
	if !ok {
		client.Kill()
		return nil, fmt.Errorf("start %s: unexpected plugin client %T", m.ID, raw)
	}
	return &Process{Client: c, m: m, client: client, rpc: rpc}, nil
}

// Ping checks that the plugin answers.
func (p *Process) Ping() error { return p.rpc.Ping() }

// Exited reports whether the plugin process has ended.
func (p *Process) Exited() bool { return p.client.Exited() }

// Pid is the plugin process's id (0 if unknown).
func (p *Process) Pid() int {
	if rc := p.client.ReattachConfig(); rc != nil {
		return rc.Pid
	}
	return 0
}

// Kill stops the plugin: gracefully, then by force.
func (p *Process) Kill() { p.client.Kill() }

// CleanupClients stops every plugin process started; call it when Eddy
// exits.
func CleanupClients() { goplugin.CleanupClients() }

// ErrUnavailable is returned while a crashed plugin waits to be restarted,
// or after it was disabled for failing too often.
var ErrUnavailable = errors.New("plugin unavailable")
