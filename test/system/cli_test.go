package system

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-cdp/eddy/internal/testenv"
)

// eddy runs the eddy command with this env's configuration.
func (e *env) eddy(extraEnv []string, args ...string) (string, string, error) {
	e.t.Helper()
	cfgPath := filepath.Join(e.t.TempDir(), "plugins.yaml")
	testenv.Must(e.t, os.WriteFile(cfgPath, []byte(e.yaml), 0o600), "write config")
	cmd := exec.Command(eddyBinary, args...)
	cmd.Env = append(os.Environ(), "EDDY_CONFIG="+cfgPath, "EDDY_DATABASE_URL="+e.dbURL, "EDDY_REDIS_URL="+e.redisURL, "EDDY_ENV=test")
	cmd.Env = append(cmd.Env, extraEnv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// A poison event travels through the real binary to the dead-letter stream;
// `eddy dlq list` shows it with its error and `eddy dlq replay` puts it back.
func TestDeadLetterCommands(t *testing.T) {
	e := newEnv(t, "")
	base := e.serve(e.config(e.dbURL, e.redisURL))
	body := `{"batch":[
		{"type":"track","event":"Fine","anonymousId":"v1","messageId":"ok-1"},
		{"type":"track","event":"Huge","anonymousId":"v1","messageId":"poison-1","properties":{"n":1e999999}},
		{"type":"track","event":"Fine","anonymousId":"v1","messageId":"ok-2"}]}`
	if code, _, b := e.post(base, "/v1/batch", body); code != http.StatusOK {
		t.Fatalf("send: %d %s", code, b)
	}
	e.waitStored(map[string]bool{"ok-1": true, "ok-2": true}, 30*time.Second)

	var listed map[string]any
	deadline := time.Now().Add(30 * time.Second)
	for listed == nil {
		out, errOut, err := e.eddy(nil, "dlq", "list", "--json")
		if err != nil {
			t.Fatalf("eddy dlq list: %v: %s", err, errOut)
		}
		sc := bufio.NewScanner(strings.NewReader(out))
		for sc.Scan() {
			var m map[string]any
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.UseNumber() // the payload holds 1e999999
			testenv.Must(t, dec.Decode(&m), "decode %q", sc.Text())
			listed = m
		}
		if listed == nil && time.Now().After(deadline) {
			t.Fatal("the poison event never reached the dead-letter stream")
		}
		time.Sleep(200 * time.Millisecond)
	}
	if listed["message_id"] != "poison-1" || !strings.Contains(listed["reason"].(string), "numeric") {
		t.Fatalf("dead letter = %v, want poison-1 with the database's numeric error", listed)
	}

	out, errOut, err := e.eddy(nil, "dlq", "list")
	if err != nil || !strings.Contains(out, "1 dead-lettered message(s)") || !strings.Contains(out, "poison-1") {
		t.Fatalf("eddy dlq list: %v %s %s", err, out, errOut)
	}
	out, errOut, err = e.eddy(nil, "dlq", "replay", listed["id"].(string))
	if err != nil || !strings.Contains(out, "replayed 1 message(s)") {
		t.Fatalf("eddy dlq replay: %v %s %s", err, out, errOut)
	}
	if _, errOut, err = e.eddy(nil, "dlq", "replay", "0-1"); err == nil || !strings.Contains(errOut, "not in the dead-letter stream") {
		t.Fatalf("replaying an unknown id: err %v, stderr %q", err, errOut)
	}
	if got := e.storedIDs(); got["poison-1"] != 0 || got["ok-1"] != 1 {
		t.Fatalf("stored %v", got)
	}
}

func TestCommandsRefuseBadInput(t *testing.T) {
	e := newEnv(t, "")
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{"unknown role", nil, []string{"serve", "--roles", "collector,cache"}, `unknown role "cache"`},
		{"no role", nil, []string{"serve", "--roles", ""}, "no role given"},
		{"production with the default key", []string{"EDDY_ENV=production", "EDDY_CONFIG=../../plugins.yaml"}, []string{"serve"}, "uses the default from the file"},
		{"replay without ids or --all", nil, []string{"dlq", "replay"}, "give DLQ ids to replay, or --all"},
		{"list limit out of range", nil, []string{"dlq", "list", "--limit", "0"}, "--limit must be between 1 and 10000"},
		{"missing config file", []string{"EDDY_CONFIG=/nonexistent.yaml"}, []string{"dlq", "list"}, "/nonexistent.yaml"},
		{"negative demo rate", nil, []string{"demo", "--rate", "-1"}, "--rate must not be negative"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, errOut, err := e.eddy(tt.env, tt.args...)
			if err == nil || !strings.Contains(errOut, tt.want) {
				t.Fatalf("eddy %s: err %v, stderr %q; want a failure saying %q", strings.Join(tt.args, " "), err, errOut, tt.want)
			}
		})
	}
}
