package wasmhost

// The export rule every module must follow, shared by Load and by the
// checks of an upload, before anything runs.

import (
	"bytes"
	"context"
	"fmt"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// CheckExports applies Eddy's rule to a module's exported functions: the
// ABI's eddy_abi_version, eddy_alloc, eddy_free and eddy_init, and at
// least one handler (eddy_process, eddy_on_events or eddy_on_sessions),
// with eddy_buffer beside eddy_process. Its message lists every missing
// export.
func CheckExports(exports map[string]api.FunctionDefinition) error {
	var missing []string
	for _, e := range required {
		if _, ok := exports[e]; !ok {
			missing = append(missing, e)
		}
	}
	handlerErr := checkHandlerExports(exports)
	switch {
	case len(missing) > 0 && handlerErr != nil:
		return fmt.Errorf("it does not export %s, nor any of eddy_process, eddy_on_events or eddy_on_sessions (build it with the eddywasm SDK)",
			strings.Join(missing, ", "))
	case len(missing) > 0:
		return fmt.Errorf("it does not export %s (build it with the eddywasm SDK)", strings.Join(missing, ", "))
	}
	return handlerErr
}

// Validate checks that wasm is a WebAssembly module that compiles and
// follows CheckExports' rule, with a throwaway interpreter runtime: it
// validates the module as the compiler would, without generating machine
// code, and runs none of it. Its errors say what is wrong with the module
// ("it does not compile: ...") without naming it, for callers to name the
// module or the field it came in; errors.Is finds ErrInvalidModule in them.
func Validate(ctx context.Context, wasm []byte) error {
	if len(wasm) < 8 || !bytes.HasPrefix(wasm, []byte("\x00asm")) {
		return invalid(`it is not a WebAssembly module (it does not start with "\0asm")`)
	}
	rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())
	defer func() { _ = rt.Close(ctx) }()
	compiled, err := rt.CompileModule(ctx, wasm)
	if err != nil {
		return invalid("it does not compile: " + err.Error())
	}
	if err := CheckExports(compiled.ExportedFunctions()); err != nil {
		return invalid(err.Error())
	}
	return nil
}

// invalidError is a reason a module is invalid; it is ErrInvalidModule.
type invalidError string

func invalid(reason string) error { return invalidError(reason) }

func (e invalidError) Error() string { return string(e) }

func (invalidError) Is(target error) bool { return target == ErrInvalidModule }
