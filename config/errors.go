package config

import (
	"fmt"
	"strconv"
)

// Error is one problem in a configuration file. Line is 0 when the problem
// has no place in the file (a default that does not fit, for instance).
// Errors returned by Parse and Load are *Error or several of them joined
// with errors.Join; use errors.As to reach the first one.
type Error struct {
	File string // name given to Parse, path given to Load
	Line int    // 1-based; 0 = unknown
	Key  string // dotted key, array-table entries indexed from 0: "subscribe[1].qos"
	Msg  string // what is wrong
	Err  error  // underlying cause, if any
}

func (e *Error) Error() string {
	where := e.File
	if where == "" {
		where = "config"
	}
	if e.Line > 0 {
		where += ":" + strconv.Itoa(e.Line)
	}
	if e.Key == "" {
		return where + ": " + e.Msg
	}
	if e.Msg == msgUnknownKey {
		return where + ": " + msgUnknownKey + " " + e.Key
	}
	return fmt.Sprintf("%s: %s: %s", where, e.Key, e.Msg)
}

func (e *Error) Unwrap() error { return e.Err }

// msgUnknownKey is the Msg of an Error for a key that is not part of the
// configuration schema; Error() then reads "file:line: unknown key K".
const msgUnknownKey = "unknown key"
