package config

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"

	toml "github.com/pelletier/go-toml/v2"
)

// decode indexes data, checks its keys against the schema and decodes it
// into cfg (which holds the defaults), cfg.Brokers included. On success the
// index (with cfg) is returned for validation.
func decode(data []byte, file string, cfg *Config) (*index, error) {
	ix, perr := buildIndex(data, file)
	if perr == nil && len(ix.schema) > 0 {
		return nil, errors.Join(ix.schema...)
	}
	n := ix.counts["broker"]
	if n == 0 { // the single [broker] table (or none)
		if err := ix.decodeDoc(data, perr, cfg, func() any { return new(Config) }); err != nil {
			return nil, err
		}
		cfg.Brokers = []Broker{cfg.Broker}
		ix.cfg = cfg
		return ix, nil
	}
	if perr != nil { // a syntax error: an untyped decode reports it without tripping over [[broker]]
		return nil, ix.decodeDoc(data, perr, new(map[string]any), func() any { return new(map[string]any) })
	}
	for _, e := range ix.exprs {
		if strings.HasPrefix(e.path, "broker.") || e.path == "broker" && e.header {
			return nil, &Error{File: file, Line: e.line, Key: e.path, Msg: "a [broker] table and [[broker]] entries: write each broker as [[broker]]"}
		}
	}
	if n > MaxBrokers {
		return nil, ix.errorf(ix.brokerKey(MaxBrokers), nil, "%d brokers; at most %d", n, MaxBrokers)
	}
	// Config.Broker is one table, so [[broker]] is decoded on its own: the document without its
	// broker expressions into cfg, then those expressions alone into an array of brokers that hold
	// the defaults. Both keep every byte offset, so errors keep their lines.
	rest, brokers := ix.splitBrokers(data)
	if err := ix.decodeDoc(rest, nil, cfg, func() any { return new(Config) }); err != nil {
		return nil, err
	}
	var bd brokerDoc
	if err := ix.decodeDoc(brokers, nil, &bd, func() any { return new(brokerDoc) }); err != nil {
		return nil, err
	}
	for i := range bd.Broker {
		ix.brokerDefaults(&bd.Broker[i], i, cfg.Broker) // cfg.Broker is Default()'s: rest has no broker key
	}
	cfg.Brokers = bd.Broker
	ix.cfg = cfg
	return ix, nil
}

// brokerDoc is what the [[broker]] part of a document decodes into.
type brokerDoc struct {
	Broker []Broker `toml:"broker"`
}

// brokerDefaults sets each key of the i-th [[broker]] entry that the file leaves out to its value
// in def. (The decoder starts each entry of an array of tables from the zero value.)
func (ix *index) brokerDefaults(b *Broker, i int, def Broker) {
	bv, dv := reflect.ValueOf(b).Elem(), reflect.ValueOf(def)
	for j := range brokerType.NumField() {
		name, _, _ := strings.Cut(brokerType.Field(j).Tag.Get("toml"), ",")
		if name != "" && name != "-" && !ix.hasPath(ix.brokerKey(i)+"."+name) {
			bv.Field(j).Set(dv.Field(j))
		}
	}
}

// splitBrokers returns two copies of data: one with the broker expressions blanked out, one with
// everything else blanked out. Blanking keeps line breaks, so lines and offsets stay as in data.
func (ix *index) splitBrokers(data []byte) (rest, brokers []byte) {
	rest, brokers = bytes.Clone(data), bytes.Clone(data)
	for i, e := range ix.exprs {
		end := len(data)
		if i+1 < len(ix.exprs) {
			end = ix.exprs[i+1].start
		}
		blank := rest
		if e.path != "broker" && !strings.HasPrefix(e.path, "broker.") && !strings.HasPrefix(e.path, "broker[") {
			blank = brokers
		}
		for j := e.start; j < end; j++ {
			if blank[j] != '\n' {
				blank[j] = ' '
			}
		}
	}
	return rest, brokers
}

// decodeDoc decodes data into v; perr is the index's parse error, if any. fresh returns a new
// value of v's type, for finding which expression a type error belongs to.
func (ix *index) decodeDoc(data []byte, perr error, v any, fresh func() any) error {
	err := decodeInto(data, v)
	switch {
	case err == nil && perr == nil:
		return nil
	case err == nil: // cannot happen: both use the same parser
		return &Error{File: ix.file, Msg: perr.Error(), Err: perr}
	case perr != nil: // a syntax error (or a type error before it)
		return ix.libError(err, nil)
	}
	// The decoder gives no key, and sometimes no usable line, for a type
	// error. Find the first top-level expression whose prefix of the document
	// fails to decode: decoding is sequential, so failing is monotonic in the
	// prefix length, and that expression is the culprit.
	n := len(ix.exprs)
	if n == 0 {
		return ix.libError(err, nil)
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
		if decodeInto(data[:end(mid)], fresh()) != nil {
			hi = mid
		} else {
			lo = mid + 1
		}
	}
	if herr := decodeInto(data[:end(hi)], fresh()); herr != nil {
		return ix.libError(herr, &ix.exprs[hi])
	}
	return ix.libError(err, nil)
}

// decodeInto runs the strict TOML decoder. A panic inside the decoder
// (it has had some on odd documents) becomes an error: a configuration file
// is outside input and must never crash the agent.
func decodeInto(data []byte, v any) (err error) {
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
