package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/eddy-cdp/eddy/core/cmd/eddy/scaffold"
)

func pluginCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "plugin", Short: "Work on plugins"}
	var runtime, dir string
	newCmd := &cobra.Command{
		Use:   "new <kind> <name>",
		Short: "Scaffold a plugin: processor, sink, source or app",
		Long: `Writes a plugin that builds, runs and passes its test as it is: plugin.yaml,
main.go, main_test.go and README.md, in <dir>/<kind>s/<name>. Processors are
WASM by default (--runtime grpc for a process of their own), apps WASM, sinks
and sources gRPC.`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			p := scaffold.Plugin{Kind: args[0], Name: args[1], Runtime: runtime}
			if err := p.Check(); err != nil {
				return err
			}
			folder := filepath.Join(dir, p.Kind+"s", p.Name)
			files, err := scaffold.Write(folder, p)
			if err != nil {
				return err
			}
			for _, f := range files {
				fmt.Println("created", f)
			}
			fmt.Printf("\nNext: (cd %s && go test .), then add it to plugins.yaml:\n  plugins:\n    - path: %s\n", folder, filepath.ToSlash(folder))
			return nil
		},
	}
	newCmd.Flags().StringVar(&runtime, "runtime", "", "grpc or wasm (default: wasm for processors and apps, grpc for sinks and sources)")
	newCmd.Flags().StringVar(&dir, "dir", "plugins", "folder the plugin's kind folder is in")
	cmd.AddCommand(newCmd)
	return cmd
}
