package config

import (
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// index maps every key of a TOML document to the line it is on, so that
// errors found after decoding (semantic validation, values the decoder
// could not place) still name a line. While walking the document it also
// compares every key with the Config schema (the toml struct tags), which
// reports all unknown keys at once, with their exact lines, including
// quoted keys that the decoder's own strict mode cannot place.
type index struct {
	file    string
	nl      []int // byte offsets of '\n'
	entries []entry
	lines   map[string]int // first line of each indexed path
	exprs   []expr         // top-level expressions, in document order
	counts  map[string]int // array-of-tables entries seen, by indexed path
	schema  []error        // unknown keys, tables written over values
	cfg     *Config
}

type entry struct {
	path  string // indexed: "subscribe[1].qos"
	plain string // without indexes: "subscribe.qos"
	line  int
}

// expr is one top-level expression: a key/value or a table header. start is
// the offset of the line it begins on, so data[:start] is the document up
// to the end of the previous expression (plus comments).
type expr struct {
	start     int
	line, end int // first and last line
	path      string
	header    bool // a table header, not a key/value
}

var (
	configType   = reflect.TypeFor[Config]()
	brokerType   = reflect.TypeFor[Broker]()
	leafTypes    = map[reflect.Type]bool{reflect.TypeFor[Duration](): true, reflect.TypeFor[Size](): true}
	tomlTagCache = map[reflect.Type]map[string]reflect.Type{}
)

func init() {
	// Build the schema once: struct type → TOML key → field type.
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Slice || t.Kind() == reflect.Pointer {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || leafTypes[t] || tomlTagCache[t] != nil {
			return
		}
		m := map[string]reflect.Type{}
		tomlTagCache[t] = m
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
			if name == "" || name == "-" {
				continue
			}
			m[name] = f.Type
			walk(f.Type)
		}
	}
	walk(configType)
}

// field returns the type of key inside t. known is false when t is a
// struct of the schema without that key. A nil t (somewhere the schema
// does not describe, e.g. below a value of the wrong type) knows every key:
// the decoder reports the type error there.
func field(t reflect.Type, key string) (ft reflect.Type, known bool) {
	if t == nil {
		return nil, true
	}
	m, ok := tomlTagCache[t]
	if !ok {
		return nil, true
	}
	ft, known = m[key]
	return ft, known
}

// elem is the type of one entry of an array of t: a slice's element, or Broker itself, the one table
// that may also be an array of tables ([broker] or [[broker]]).
func elem(t reflect.Type) reflect.Type {
	if t != nil && t.Kind() == reflect.Slice {
		return t.Elem()
	}
	if t == brokerType {
		return t
	}
	return nil
}

func join(a, b string) string {
	if a == "" {
		return b
	}
	return a + "." + b
}

func buildIndex(data []byte, file string) (*index, error) {
	ix := &index{file: file, lines: map[string]int{}, counts: map[string]int{}}
	for i, c := range data {
		if c == '\n' {
			ix.nl = append(ix.nl, i)
		}
	}
	var p unstable.Parser
	p.Reset(data)
	table, plainTable, tableType := "", "", configType
	for p.NextExpression() {
		n := p.Expression()
		var e expr
		switch n.Kind {
		case unstable.Table, unstable.ArrayTable:
			parts, off := keyParts(n)
			if off < 0 {
				continue
			}
			e.line = ix.lineAt(off)
			table, plainTable, tableType = ix.header(parts, n.Kind == unstable.ArrayTable, e.line)
			e.path, e.header = table, true
		case unstable.KeyValue:
			_, off := keyParts(n)
			if off < 0 {
				continue
			}
			e.line = ix.lineAt(off)
			e.path = ix.keyValue(n, table, plainTable, tableType)
		default:
			continue
		}
		e.start = ix.lineStart(e.line)
		if k := len(ix.exprs); k > 0 {
			ix.exprs[k-1].end = max(ix.exprs[k-1].line, e.line-1)
		}
		ix.exprs = append(ix.exprs, e)
	}
	if k := len(ix.exprs); k > 0 {
		ix.exprs[k-1].end = len(ix.nl) + 1
	}
	return ix, p.Error()
}

// keyParts returns the parts of a node's key and the byte offset of the
// first part (-1 if the node has no key).
func keyParts(n *unstable.Node) ([]string, int) {
	var parts []string
	off := -1
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if off < 0 {
			off = int(k.Raw.Offset)
		}
		parts = append(parts, string(k.Data))
	}
	return parts, off
}

// header handles "[a.b]" and "[[a.b]]" and returns the new current table.
func (ix *index) header(parts []string, array bool, line int) (path, plain string, t reflect.Type) {
	t = configType
	reported := false
	for i, part := range parts {
		var ft reflect.Type
		ft, path, plain = ix.step(t, path, plain, part, line, &reported)
		if i == len(parts)-1 && array {
			c := ix.counts[path]
			ix.counts[path] = c + 1
			path += "[" + strconv.Itoa(c) + "]"
			ft = elem(ft)
		} else if c, ok := ix.counts[path]; ok {
			path += "[" + strconv.Itoa(c-1) + "]"
			ft = elem(ft)
		}
		t = ft
	}
	if !reported && !array && t != nil && tomlTagCache[t] == nil {
		ix.schema = append(ix.schema, notATable(ix.file, line, path, t))
	}
	ix.add(path, plain, line)
	return path, plain, t
}

// step goes one part of a key down from the table t at path (plain: the same without array
// indexes) and returns the part's type and paths. It reports, once per key (*reported), a part below
// a value that is not a table and a part the schema does not know.
func (ix *index) step(t reflect.Type, path, plain, part string, line int, reported *bool) (reflect.Type, string, string) {
	if !*reported && t != nil && tomlTagCache[t] == nil {
		ix.schema = append(ix.schema, notATable(ix.file, line, path, t))
		*reported = true
	}
	ft, known := field(t, part)
	path, plain = join(path, part), join(plain, part)
	if !known && !*reported {
		ix.schema = append(ix.schema, &Error{File: ix.file, Line: line, Key: path, Msg: msgUnknownKey})
		*reported = true
	}
	return ft, path, plain
}

// notATable reports a table header or dotted key that goes below a key
// whose value is not a table.
func notATable(file string, line int, path string, t reflect.Type) *Error {
	if t.Kind() == reflect.Slice && tomlTagCache[t.Elem()] != nil {
		return &Error{File: file, Line: line, Key: path, Msg: "wrong type: an array of tables: write [[" + path + "]]"}
	}
	return &Error{File: file, Line: line, Key: path, Msg: "wrong type: a value, not a table"}
}

// keyValue records a key/value (and what an inline table or an array of
// inline tables holds) and returns its indexed path.
func (ix *index) keyValue(n *unstable.Node, table, plainTable string, t reflect.Type) string {
	parts, off := keyParts(n)
	line := ix.lineAt(off)
	path, plain := table, plainTable
	reported := false
	for _, part := range parts {
		t, path, plain = ix.step(t, path, plain, part, line, &reported)
	}
	ix.add(path, plain, line)
	v := n.Value()
	if v == nil {
		return path
	}
	// Keys inside a value are indexed only where the schema expects a table:
	// below a scalar they are part of a wrong-typed value, and the error
	// belongs to the outer key.
	switch v.Kind {
	case unstable.InlineTable:
		if tomlTagCache[t] != nil {
			ix.inline(v, path, plain, t)
		}
	case unstable.Array:
		if tomlTagCache[elem(t)] == nil {
			break
		}
		i := 0
		for it := v.Children(); it.Next(); i++ {
			c := it.Node()
			if c.Kind != unstable.InlineTable {
				continue
			}
			p := path + "[" + strconv.Itoa(i) + "]"
			l := line
			if kids := c.Children(); kids.Next() {
				if _, o := keyParts(kids.Node()); o >= 0 {
					l = ix.lineAt(o)
				}
			}
			ix.add(p, plain, l)
			ix.inline(c, p, plain, elem(t))
		}
		if elem(t) == t { // broker = [{…}, …]: counted like [[broker]]
			ix.counts[path] = i
		}
	}
	return path
}

func (ix *index) inline(v *unstable.Node, path, plain string, t reflect.Type) {
	for it := v.Children(); it.Next(); {
		if kv := it.Node(); kv.Kind == unstable.KeyValue {
			ix.keyValue(kv, path, plain, t)
		}
	}
}

func (ix *index) add(path, plain string, line int) {
	ix.entries = append(ix.entries, entry{path: path, plain: plain, line: line})
	if _, ok := ix.lines[path]; !ok {
		ix.lines[path] = line
	}
}

// lineAt returns the 1-based line of a byte offset.
func (ix *index) lineAt(off int) int { return sort.SearchInts(ix.nl, off) + 1 }

// lineStart returns the byte offset where a 1-based line begins.
func (ix *index) lineStart(line int) int {
	if line <= 1 || line-2 >= len(ix.nl) {
		return 0
	}
	return ix.nl[line-2] + 1
}

// has reports whether the document sets path or anything below it.
func (ix *index) has(path string) bool {
	for _, e := range ix.entries {
		if e.plain == path || strings.HasPrefix(e.plain, path+".") {
			return true
		}
	}
	return false
}

// hasPath is has for an indexed path: whether the document sets "broker[1].keepalive" (has would
// answer for any broker).
func (ix *index) hasPath(path string) bool {
	for _, e := range ix.entries {
		if e.path == path || strings.HasPrefix(e.path, path+".") {
			return true
		}
	}
	return false
}

// brokerKey is the key of the i-th broker in messages: "broker" for the single [broker] table,
// "broker[i]" for an entry of [[broker]].
func (ix *index) brokerKey(i int) string {
	if ix.counts["broker"] == 0 {
		return "broker"
	}
	return "broker[" + strconv.Itoa(i) + "]"
}

// lineOf returns the line of path, or of its closest parent in the
// document ("subscribe[1]" for a missing "subscribe[1].topic"), or 0.
func (ix *index) lineOf(path string) int {
	if l, ok := ix.lines[path+"[0]"]; ok { // an array of tables as a whole
		return l
	}
	for path != "" {
		if l, ok := ix.lines[path]; ok {
			return l
		}
		i := strings.LastIndexAny(path, ".[")
		if i < 0 {
			break
		}
		path = path[:i]
	}
	return 0
}

// errorf builds an *Error for key with the key's line.
func (ix *index) errorf(key string, cause error, format string, args ...any) *Error {
	return &Error{File: ix.file, Line: ix.lineOf(key), Key: key, Msg: fmt.Sprintf(format, args...), Err: cause}
}
