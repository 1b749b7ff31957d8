package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sessionstore/sessionstore"
	"github.com/sessionstore/sessionstore/internal/cliutil"
)

// progressMin is how many files make an import long enough for a
// progress line (on a terminal only).
const progressMin = 20

// importResult is one line of import -json output.
type importResult struct {
	File   string `json:"file"` // "-" for stdin
	Name   string `json:"name,omitempty"`
	Result string `json:"result"` // imported, skipped, failed
	Reason string `json:"reason,omitempty"`
}

func runImport(ctx context.Context, b *backend, o *options) int {
	prog := newProgress(o.Stderr, len(o.args), o.progressOK && len(o.args) >= progressMin)
	var imported, skipped, failed int
	enc := json.NewEncoder(o.Stdout)
	for i, file := range o.args {
		if ctx.Err() != nil {
			prog.clear()
			return o.Fail(fmt.Errorf("interrupted after %d of %d files", i, len(o.args)))
		}
		res := importOne(ctx, b, file, o)
		prog.clear()
		switch res.Result {
		case "imported":
			imported++
		case "skipped":
			skipped++
		default:
			failed++
		}
		switch {
		case o.jsonOut:
			enc.Encode(res)
		case res.Result == "failed":
			fmt.Fprintf(o.Stderr, "sessionstore: error: %s: %s\n", fileLabel(file), cliutil.Escape(res.Reason))
		case res.Result == "skipped":
			fmt.Fprintf(o.Stdout, "skipped  %s: %s\n", fileLabel(file), cliutil.Escape(res.Reason))
		default:
			fmt.Fprintf(o.Stdout, "imported %s as %s\n", fileLabel(file), strconv.Quote(res.Name))
		}
		prog.show(i + 1)
	}
	if !o.jsonOut {
		fmt.Fprintf(o.Stdout, "%d of %d files imported, %d skipped, %d failed\n", imported, len(o.args), skipped, failed)
	}
	if failed > 0 {
		return o.Fail(fmt.Errorf("%d of %d files not imported", failed, len(o.args)))
	}
	return 0
}

// fileLabel names a file in output: quoted, or stdin for "-".
func fileLabel(file string) string {
	if file == "-" {
		return "stdin"
	}
	return strconv.Quote(file)
}

func importOne(ctx context.Context, b *backend, file string, o *options) importResult {
	res := importResult{File: file, Result: "failed"}
	name := o.name
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), ".json")
	}
	if err := sessionstore.ValidateAuthType(name); err != nil {
		res.Reason = fmt.Sprintf("%s is not a session name (%v); give one with -name", strconv.Quote(name), err)
		return res
	}
	res.Name = name
	var a sessionstore.AuthObject
	var err error
	if o.oauth {
		a, err = readOAuthFile(file, o.stdin, now())
	} else {
		a, err = sessionstore.ReadPodioJSFile(file)
		if errors.Is(err, sessionstore.ErrNotFound) {
			res.Result, res.Reason = "skipped", "no session in it (empty or cleared)"
			return res
		}
		if err != nil && isOAuthFile(file) {
			err = fmt.Errorf("%w; it is an OAuth token response: import it with -oauth -name NAME", err)
		}
	}
	if err == nil {
		err = b.put(ctx, name, a, o.force)
	}
	switch {
	case errors.Is(err, errExists):
		res.Reason = fmt.Sprintf("a session %s is already stored; -force replaces it", strconv.Quote(name))
	case !o.force && (errors.Is(err, sessionstore.ErrWrongKey) || errors.Is(err, sessionstore.ErrTampered) || errors.Is(err, sessionstore.ErrRollback)):
		res.Reason = fmt.Sprintf("session %s is stored but does not open (%v); -force replaces it", strconv.Quote(name), err)
	case err != nil:
		res.Reason = strings.TrimPrefix(err.Error(), "sessionstore: ")
	default:
		res.Result = "imported"
	}
	return res
}

// progress is a line on a terminal, rewritten in place during an import.
type progress struct {
	w     io.Writer
	total int
	on    bool
	drawn int // length of the line on screen
}

func newProgress(w io.Writer, total int, on bool) *progress {
	return &progress{w: w, total: total, on: on}
}

// show draws the line, except for the last file: the summary follows.
func (p *progress) show(done int) {
	if p.on && done < p.total {
		line := fmt.Sprintf("sessionstore: import %d/%d", done, p.total)
		fmt.Fprint(p.w, "\r"+line)
		p.drawn = len(line)
	}
}

// clear erases the line, so that other output starts on a clean line.
func (p *progress) clear() {
	if p.drawn > 0 {
		fmt.Fprintf(p.w, "\r%s\r", strings.Repeat(" ", p.drawn))
		p.drawn = 0
	}
}
