package main

import (
	"context"
	"encoding"
	"flag"
	"fmt"
	"io"
	"maps"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"unicode"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/redact"
)

// setupCheckConfig is edge-agent check-config: config.Load (the same checks as run, including that
// the files it names can be opened), then every setting with its resolved value on stdout, one
// "key = value" per line with the keys config's errors use ("broker.url", "subscribe[0].qos"),
// followed by the provider's limits. Secrets are redacted; paths to secret files are shown.
// Problems go to stderr, each naming the file, line and key; the exit code is then 1.
func setupCheckConfig(fs *flag.FlagSet) func(context.Context, *cli) int {
	path := fs.String("config", defaultConfigPath, "configuration `file` to check")
	fs.StringVar(path, "c", defaultConfigPath, "configuration `file` (short for --config)")
	return func(_ context.Context, c *cli) int {
		cfg, err := config.Load(*path)
		if err != nil {
			problems := configProblems(err)
			for _, p := range problems {
				fmt.Fprintln(c.stderr, p)
			}
			noun := "problems"
			if len(problems) == 1 {
				noun = "problem"
			}
			fmt.Fprintf(c.stderr, "%s: %s: %d %s\n", c.name, *path, len(problems), noun)
			return 1
		}
		for _, w := range cfg.Warnings {
			fmt.Fprintf(c.stderr, "warning: %s\n", w)
		}
		fmt.Fprintf(c.stdout, "# %s: valid; every setting with its resolved value (defaults included, secrets redacted)\n", *path)
		if len(cfg.Brokers) < 2 {
			printSettings(c.stdout, "", reflect.ValueOf(*cfg), tomlName)
			fmt.Fprintf(c.stdout, "# limits of provider %q (from the provider, not keys of the file; 0 = no limit beyond MQTT's)\n", cfg.Broker.Provider)
			printSettings(c.stdout, "limits", reflect.ValueOf(cfg.Broker.Limits), snakeName)
			return 0
		}
		// Several brokers: the top-level settings ([cognito] is per broker then), then each broker's.
		printSettings(c.stdout, "", reflect.ValueOf(*cfg), tomlName, "broker", "cognito")
		for i, b := range cfg.Brokers {
			key := fmt.Sprintf("broker[%d]", i)
			fmt.Fprintf(c.stdout, "# broker %q: provider %q, url %s, client_id %q, publish %s, queue max_bytes %v overflow %s\n",
				b.Name, b.Provider, redactSetting(key+".url", b.URL), b.ClientID, routesText(b.Publish), b.Queue.MaxBytes, b.Queue.Overflow)
			printSettings(c.stdout, key, reflect.ValueOf(b), tomlName)
			fmt.Fprintf(c.stdout, "# limits of broker %q, provider %q (not keys of the file; 0 = no limit beyond MQTT's)\n", b.Name, b.Provider)
			printSettings(c.stdout, key+".limits", reflect.ValueOf(b.Limits), snakeName)
		}
		return 0
	}
}

// configProblems lists each problem of a config.Load error on its own line: config joins them with
// errors.Join, each a *config.Error that names the file, line and key.
func configProblems(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			if _, isCfg := err.(*config.Error); !isCfg {
				for _, e := range j.Unwrap() {
					walk(e)
				}
				return
			}
		}
		out = append(out, err.Error())
	}
	walk(err)
	return out
}

// routesText is a broker's publish filters for a person: every topic when there are none.
func routesText(publish []string) string {
	if len(publish) == 0 {
		return "every topic"
	}
	return strings.Join(publish, " ")
}

// printSettings writes one "key = value" line per leaf of v (a struct), in field order. name gives
// a field's key ("" skips the field); the fields named in omit are skipped too.
func printSettings(w io.Writer, prefix string, v reflect.Value, name func(reflect.StructField) string, omit ...string) {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		key := name(f)
		if key == "" || !f.IsExported() || slices.Contains(omit, key) {
			continue
		}
		if prefix != "" {
			key = prefix + "." + key
		}
		printSetting(w, key, v.Field(i), name)
	}
}

func printSetting(w io.Writer, key string, v reflect.Value, name func(reflect.StructField) string) {
	if v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return // an optional key the file leaves out (uid, gid of an [[access]] rule)
		}
		v = v.Elem()
	}
	if s, ok := settingValue(key, v); ok {
		fmt.Fprintf(w, "%s = %s\n", key, s)
		return
	}
	switch v.Kind() {
	case reflect.Struct:
		printSettings(w, key, v, name)
	case reflect.Slice, reflect.Array:
		if v.Len() == 0 {
			fmt.Fprintf(w, "%s = []\n", key)
		}
		for i := range v.Len() {
			printSetting(w, fmt.Sprintf("%s[%d]", key, i), v.Index(i), name)
		}
	case reflect.Map:
		keys := v.MapKeys()
		sort.Slice(keys, func(i, j int) bool { return fmt.Sprint(keys[i]) < fmt.Sprint(keys[j]) })
		for _, k := range keys {
			printSetting(w, fmt.Sprintf("%s.%v", key, k), v.MapIndex(k), name)
		}
	default:
		fmt.Fprintf(w, "%s = %v\n", key, v.Interface())
	}
}

// settingValue formats a leaf as TOML: strings and text values (sizes, durations) quoted, numbers
// and booleans bare, arrays of those in brackets. ok is false for tables and arrays of tables.
func settingValue(key string, v reflect.Value) (string, bool) {
	if v.CanInterface() {
		if tm, ok := v.Interface().(encoding.TextMarshaler); ok {
			b, err := tm.MarshalText()
			if err != nil {
				return strconv.Quote("(" + err.Error() + ")"), true
			}
			return strconv.Quote(string(b)), true
		}
		if s, ok := v.Interface().(fmt.Stringer); ok && v.Kind() != reflect.Struct {
			return strconv.Quote(s.String()), true // time.Duration among the provider's limits
		}
	}
	switch v.Kind() {
	case reflect.String:
		return strconv.Quote(redactSetting(key, v.String())), true
	case reflect.Bool, reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
		return fmt.Sprint(v.Interface()), true
	case reflect.Slice:
		if k := v.Type().Elem().Kind(); k == reflect.Struct || k == reflect.Pointer || k == reflect.Map {
			return "", false
		}
		parts := make([]string, v.Len())
		for i := range v.Len() {
			s, ok := settingValue(key, v.Index(i))
			if !ok {
				return "", false
			}
			parts[i] = s
		}
		return "[" + strings.Join(parts, ", ") + "]", true
	}
	return "", false
}

// secretKey matches the keys whose values are secrets themselves; a key ending in _file names a file
// that holds one, and its path is shown.
func secretKey(key string) bool {
	leaf := key[strings.LastIndexAny(key, ".]")+1:]
	if strings.HasSuffix(leaf, "_file") {
		return false
	}
	for _, word := range []string{"password", "passwd", "secret", "token", "credential", "private_key"} {
		if strings.Contains(leaf, word) {
			return true
		}
	}
	return false
}

// redactSetting hides a secret value, and in a URL its password and the values of its query string
// (a broker may take a token there); what is left still shows where the agent connects.
func redactSetting(key, s string) string {
	if s == "" {
		return s
	}
	if secretKey(key) {
		return redact.Placeholder
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return s
	}
	userinfo := ""
	if u.User != nil {
		userinfo = u.User.Username()
		if _, has := u.User.Password(); has {
			userinfo += ":" + redact.Placeholder
		}
		userinfo += "@"
		u.User = nil
	}
	if u.RawQuery != "" {
		names := slices.Sorted(maps.Keys(u.Query()))
		for i, k := range names {
			names[i] = url.QueryEscape(k) + "=" + redact.Placeholder
		}
		u.RawQuery = strings.Join(names, "&")
	}
	scheme, rest, _ := strings.Cut(u.String(), "://")
	return scheme + "://" + userinfo + rest
}

// tomlName is a Config field's key: its toml tag; "" for fields that are not keys of the file.
func tomlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "-" {
		return ""
	}
	return name
}

// snakeName names a field without a toml tag in the file's style: MaxSubscriptions → max_subscriptions.
func snakeName(f reflect.StructField) string {
	var b strings.Builder
	rs := []rune(f.Name)
	for i, r := range rs {
		if unicode.IsUpper(r) {
			prevLower := i > 0 && !unicode.IsUpper(rs[i-1])
			nextLower := i > 0 && i+1 < len(rs) && unicode.IsLower(rs[i+1])
			if i > 0 && (prevLower || nextLower) {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}
