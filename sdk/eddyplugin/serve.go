package eddyplugin

import (
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
	goplugin "github.com/hashicorp/go-plugin"
)

// parentPoll is how often Serve checks that Eddy is still running.
const parentPoll = time.Second

// Serve serves p to Eddy and returns when Eddy closes the plugin. Call it
// from main. It exits the process if Eddy dies (the parent process
// changes), since nothing else would stop an orphaned plugin.
func Serve(p Plugin) {
	go watchParent(os.Getppid(), parentPoll)
	goplugin.Serve(&goplugin.ServeConfig{
		HandshakeConfig: Handshake,
		VersionedPlugins: map[int]goplugin.PluginSet{
			ProtocolVersion: {PluginName: &GRPCPlugin{Impl: p}},
		},
		GRPCServer: goplugin.DefaultGRPCServer,
		// JSON lines on stderr, which Eddy parses into its own logs.
		Logger: hclog.New(&hclog.LoggerOptions{Output: os.Stderr, JSONFormat: true, Level: hclog.Info}),
	})
}

// watchParent exits when the parent process is gone: on Linux the
// orphan is re-parented, so its parent id changes.
func watchParent(ppid int, every time.Duration) {
	for {
		time.Sleep(every)
		if os.Getppid() != ppid {
			os.Exit(0)
		}
	}
}
