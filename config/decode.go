package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// decode indexes data, checks its keys against the schema and decodes it
// into cfg (which holds the defaults). On success the index (with cfg) is
// returned for validation.
func decode(data []byte, file string, cfg *Config) (*index, error) {
	ix, perr := buildIndex(data, file)
	if perr == nil && len(ix.schema) > 0 {
		return nil, errors.Join(ix.schema...)
	}
	err := decodeInto(data, cfg)
	switch {
	case err == nil && perr == nil:
		ix.cfg = cfg
		return ix, nil
	case err == nil: // cannot happen: both use the same parser
		return nil, &Error{File: file, Msg: perr.Error(), Err: perr}
	case perr != nil: // a syntax error (or a type error before it)
		return nil, ix.libError(err, nil)
	}
	// The decoder gives no key, and sometimes no usable line, for a type
	// error. Find the first top-level expression whose prefix of the document
	// fails to decode: decoding is sequential, so failing is monotonic in the
	// prefix length, and that expression is the culprit.
	n := len(ix.exprs)
	if n == 0 {
		return nil, ix.libError(err, nil)
	}
	end := func(i int) int {
		if i+1 < n {
			return ix.exprs[i+1].start
		}
		return len(data)
	}
	lo, hi := 0, n-1
	for lo < hi {
		mid := (lo + hi) / 2
		if decodeInto(data[:end(mid)], new(Config)) != nil {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if herr := decodeInto(data[:end(hi)], new(Config)); herr != nil {
		return nil, ix.libError(herr, &ix.exprs[hi])
	}
	return nil, ix.libError(err, nil)
}

// decodeInto runs the strict TOML decoder. A panic inside the decoder
// (it has had some on odd documents) becomes an error: a configuration file
// is outside input and must never crash the agent.
func decodeInto(data []byte, v *Config) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the TOML decoder cannot read this document (%v)", r)
		}
	}()
	return toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields().Decode(v)
}

// libError turns a decoder error into *Error(s) with a line and, where it
// can be found, a key. culprit is the expression that caused it, if known.
func (ix *index) libError(err error, culprit *expr) error {
	var se *toml.StrictMissingError
	if errors.As(err, &se) {
		errs := make([]error, 0, len(se.Errors))
		for _, e := range se.Errors {
			line, _ := e.Position()
			key := strings.Join(e.Key(), ".")
			for _, en := range ix.entries {
				if en.line == line && en.plain == key {
					key = en.path
					break
				}
			}
			errs = append(errs, &Error{File: ix.file, Line: line, Key: key, Msg: msgUnknownKey})
		}
		if len(errs) > 0 {
			return errors.Join(errs...)
		}
	}
	line := 0
	var de *toml.DecodeError
	if errors.As(err, &de) {
		line, _ = de.Position()
	}
	key := ""
	if culprit != nil {
		if line < culprit.line || line > culprit.end {
			line = culprit.line
		}
		key = culprit.path
		for _, en := range ix.entries {
			if en.line >= culprit.line && en.line <= line {
				key = en.path
			}
		}
	} else if line > 0 {
		for _, en := range ix.entries {
			if en.line == line {
				key = en.path
			}
		}
	}
	return &Error{File: ix.file, Line: line, Key: key, Msg: tidy(err), Err: err}
}

var typeMismatch = regexp.MustCompile(`^cannot decode TOML (\S+) into struct field \S+ of type (.+)$`)

var floatMismatch = regexp.MustCompile(`^float cannot be assigned to (\S+)$`)

var typeNames = map[string]string{
	"int": "an integer", "*int": "an integer", "string": "a string", "[]string": "an array of strings",
	"config.Duration": `a duration string like "60s"`, "config.Size": `a size like "256MiB" or 4096`,
	"[]config.Subscribe": "[[subscribe]] tables", "[]config.Access": "[[access]] tables",
}

// tidy rewrites the decoder's messages for people who edit config files,
// not Go programs.
func tidy(err error) string {
	msg := strings.TrimPrefix(err.Error(), "toml: ")
	if m := typeMismatch.FindStringSubmatch(msg); m != nil {
		want, ok := typeNames[m[2]]
		if !ok && strings.HasPrefix(m[2], "config.") {
			want = "a table"
		} else if !ok {
			want = m[2]
		}
		return fmt.Sprintf("wrong type: a TOML %s here, but it must be %s", m[1], want)
	}
	if m := floatMismatch.FindStringSubmatch(msg); m != nil {
		return "wrong type: a float here, but it must be " + cmp.Or(typeNames[m[1]], m[1])
	}
	if strings.HasPrefix(msg, "cannot store inline table") {
		return "wrong type: an inline table is not allowed here"
	}
	if strings.HasPrefix(msg, "cannot assign boolean") {
		return "wrong type: a boolean (true/false) is not allowed here"
	}
	return msg
}
