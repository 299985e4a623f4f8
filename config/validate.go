package config

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/edge-agent/edge-agent/awsregion"
	"github.com/edge-agent/edge-agent/topic"
)

var (
	knownLevels  = []string{"debug", "info", "warn", "error"}
	knownFormats = []string{"text", "json"}
)

// checker validates one decoded Config: each section of the file has its own method, which reports
// problems with bad (an error) or warn (an adjustment, into Config.Warnings) and fills in the
// defaults that depend on other keys.
type checker struct {
	c    *Config
	ix   *index
	lim  Limits // the provider's (Broker.Limits)
	aws  bool   // provider aws-iot: its rules beyond Limits (signed wss:// URL, AWS credentials, [cognito])
	host Host   // for client_id templates
	errs []*Error
}

// validate checks the decoded configuration, resolves Broker.Limits and the defaults that depend on
// other keys, and collects Warnings. Every error names its key and, where the document has it, the
// line; errors are sorted by line.
func validate(c *Config, ix *index, h Host) error {
	c.Broker.Limits = providerLimits[c.Broker.Provider]
	v := &checker{c: c, ix: ix, lim: c.Broker.Limits, aws: c.Broker.Provider == ProviderAWSIoT, host: h}
	v.provider()
	v.identity()
	v.brokerURL()
	v.brokerAWS()
	v.brokerSession()
	v.brokerBounds()
	v.cognito()
	v.queue()
	v.maxPayload()
	v.memoryBudget()
	v.subscriptions()
	v.access()
	v.log()
	v.metrics()
	return v.err()
}

func (v *checker) bad(key string, format string, args ...any) {
	v.errs = append(v.errs, v.ix.errorf(key, nil, format, args...))
}

func (v *checker) warn(key, format string, args ...any) {
	msg := key + ": " + fmt.Sprintf(format, args...)
	if l := v.ix.lineOf(key); l > 0 {
		msg = fmt.Sprintf("%s:%d: %s", v.ix.file, l, msg)
	}
	v.c.Warnings = append(v.c.Warnings, msg)
}

// err joins the errors found, those with a line first, by line.
func (v *checker) err() error {
	if len(v.errs) == 0 {
		return nil
	}
	slices.SortStableFunc(v.errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) { // errors without a line go last
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	out := make([]error, len(v.errs))
	for i, e := range v.errs {
		out[i] = e
	}
	return errors.Join(out...)
}

func (v *checker) provider() {
	if _, ok := providerLimits[v.c.Broker.Provider]; !ok {
		v.bad("broker.provider", "%q is not a provider: use %q or %q", v.c.Broker.Provider, ProviderMQTT, ProviderAWSIoT)
	}
}

// identity checks client_id, state_dir and socket.
func (v *checker) identity() {
	c, lim := v.c, v.lim
	id, err := v.host.expand(c.ClientID)
	c.ClientID = id // the limits below apply to the id the broker sees
	// client_id [MQTT-3.1.3-5]: a UTF-8 string of at most 65535 bytes.
	switch {
	case err != nil:
		v.bad("client_id", "%v", err)
	case c.ClientID == "":
		v.bad("client_id", "empty: set client_id (the default, the host name, could not be read)")
	case !utf8.ValidString(c.ClientID) || strings.ContainsRune(c.ClientID, 0):
		v.bad("client_id", "must be valid UTF-8 without NUL characters")
	case len(c.ClientID) > mqttMaxString:
		v.bad("client_id", "longer than %d bytes", mqttMaxString)
	case lim.MaxClientID > 0 && len(c.ClientID) > lim.MaxClientID:
		v.bad("client_id", "%d bytes; %s allows at most %d", len(c.ClientID), lim.Name, lim.MaxClientID)
	case lim.NoDollarID && strings.HasPrefix(c.ClientID, "$"):
		v.bad("client_id", "must not start with '$' for %s (reserved)", lim.Name)
	}
	if c.StateDir == "" {
		v.bad("state_dir", "empty: set a directory for the queue database")
	}
	switch {
	case c.Socket == "":
		v.bad("socket", "empty: set the path of the local API socket")
	case len(c.Socket) > MaxSocketPath:
		v.bad("socket", "path is %d bytes; Linux binds Unix sockets of at most %d bytes: choose a shorter path", len(c.Socket), MaxSocketPath)
	case strings.ContainsRune(c.Socket, 0):
		v.bad("socket", "path contains a NUL character")
	}
}

// brokerURL checks broker.url and, for AWS IoT, takes broker.region from its host when unset.
func (v *checker) brokerURL() {
	b := &v.c.Broker
	if b.URL == "" {
		v.bad("broker.url", `missing: set the broker's WebSocket URL, e.g. "wss://broker.example.com/mqtt"`)
		return
	}
	u, err := url.Parse(b.URL)
	if err != nil {
		v.bad("broker.url", "not a URL: %v", errors.Unwrap(err))
		return
	}
	switch {
	case u.Scheme != "ws" && u.Scheme != "wss":
		v.bad("broker.url", "scheme %q: use ws:// or wss:// (MQTT over WebSocket)", u.Scheme)
	case v.aws && u.Scheme != "wss":
		v.bad("broker.url", "AWS IoT needs wss://, not %s://", u.Scheme)
	case u.Hostname() == "":
		v.bad("broker.url", "no host in %q", b.URL)
	case u.User != nil:
		v.bad("broker.url", "must not hold credentials: use broker.username and broker.password_file")
	case !validPort(u.Port()):
		v.bad("broker.url", "port %q is not a TCP port: use 1..65535, or leave it out for the scheme's default", u.Port())
	case v.aws && u.RawQuery != "":
		v.bad("broker.url", "must not have a query string for AWS IoT: the agent signs the URL itself")
	}
	if v.aws && b.Region == "" && u.Hostname() != "" {
		if r, ok := awsregion.FromHost(u.Hostname()); ok {
			b.Region = r
		} else {
			v.bad("broker.region", "missing, and the host %q is not of the form <id>.iot.<region>.amazonaws.com: set region", u.Hostname())
		}
	}
}

// brokerAWS checks the keys that only one of the providers uses.
func (v *checker) brokerAWS() {
	b := &v.c.Broker
	if b.Region != "" && !v.aws {
		v.warn("broker.region", "ignored: only used with provider %q", ProviderAWSIoT)
	} else if b.Region != "" && !awsregion.Valid(b.Region) {
		v.bad("broker.region", "%q is not an AWS region name (like \"eu-west-1\")", b.Region)
	}
	if v.aws && b.Username != "" {
		v.bad("broker.username", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}
	if v.aws && b.PasswordFile != "" {
		v.bad("broker.password_file", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}
}

// brokerSession checks keepalive, the in-flight window, the send rates and the reconnect backoff,
// within MQTT's limits and the provider's.
func (v *checker) brokerSession() {
	b, lim := &v.c.Broker, v.lim
	switch k := b.Keepalive.Duration; {
	case k < time.Second || k > mqttMaxKeepalive:
		v.bad("broker.keepalive", "%v is outside 1s..65535s", k)
	case k%time.Second != 0:
		v.bad("broker.keepalive", "%v: MQTT counts keepalive in whole seconds", k)
	case lim.MinKeepalive > 0 && k < lim.MinKeepalive:
		b.Keepalive.Duration = lim.MinKeepalive
		v.warn("broker.keepalive", "%v is below the %s minimum; using %v", k, lim.Name, lim.MinKeepalive)
	case lim.MaxKeepalive > 0 && k > lim.MaxKeepalive:
		b.Keepalive.Duration = lim.MaxKeepalive
		v.warn("broker.keepalive", "%v is above the %s maximum; using %v", k, lim.Name, lim.MaxKeepalive)
	}
	switch {
	case b.MaxInflight < 1 || b.MaxInflight > mqttMaxInflight:
		v.bad("broker.max_inflight", "%d is outside 1..65535", b.MaxInflight)
	case lim.MaxInflight > 0 && b.MaxInflight > lim.MaxInflight:
		v.warn("broker.max_inflight", "%d is above the %s limit of %d unacknowledged QoS 1 messages; using %d", b.MaxInflight, lim.Name, lim.MaxInflight, lim.MaxInflight)
		b.MaxInflight = lim.MaxInflight
	}
	b.MaxInflight3 = DefaultMaxInflight3 // 3.x has no Receive Maximum to lower a large default
	if v.ix.has("broker.max_inflight") {
		b.MaxInflight3 = b.MaxInflight
	}
	v.brokerProtocol()
	providerLimit(v, "broker.max_publish_rate", &b.MaxPublishRate, lim.PublishRate)
	providerLimit(v, "broker.max_byte_rate", &b.MaxByteRate, lim.ByteRate)
	providerLimit(v, "broker.max_subscriptions", &b.MaxSubscriptions, lim.MaxSubscriptions)
	if b.ReconnectMin.Duration < lim.MinReconnect {
		v.warn("broker.reconnect_min", "%v: %s allows one CONNECT per client id per %v; quicker retries may be throttled (the default is 1s)",
			b.ReconnectMin.Duration, lim.Name, lim.MinReconnect)
	}
	switch rmin, rmax := b.ReconnectMin.Duration, b.ReconnectMax.Duration; {
	case rmin < 10*time.Millisecond || rmin > time.Hour:
		v.bad("broker.reconnect_min", "%v is outside 10ms..1h", rmin)
	case rmax < rmin || rmax > 24*time.Hour:
		v.bad("broker.reconnect_max", "%v: must be at least reconnect_min (%v) and at most 24h", rmax, rmin)
	}
}

// brokerProtocol checks broker.protocol (default: the provider's) and broker.session_expiry.
func (v *checker) brokerProtocol() {
	b, lim := &v.c.Broker, v.lim
	if lim.DefaultProtocol == "" {
		return // not a provider (reported)
	}
	if b.Protocol == "" && !v.ix.has("broker.protocol") {
		b.Protocol = lim.DefaultProtocol
	}
	allowed := lim.Protocols
	if allowed == nil {
		allowed = Protocols
	}
	if !slices.Contains(allowed, b.Protocol) {
		v.bad("broker.protocol", "%q is not a protocol %s speaks: use %s", b.Protocol, cmp.Or(lim.Name, "the broker"),
			`"`+strings.Join(allowed, `", "`)+`"`)
	}
	switch e := b.SessionExpiry.Duration; {
	case e < 0 || e > math.MaxUint32*time.Second:
		v.bad("broker.session_expiry", "%v is outside 0..%v (0 = a clean session on every connection)", e, math.MaxUint32*time.Second)
	case e%time.Second != 0:
		v.bad("broker.session_expiry", "%v: MQTT counts the session expiry in whole seconds", e)
	}
}

// providerLimit checks a limit key where 0 means no limit: a negative value is refused, and a key
// the file leaves out takes the provider's default def (0 too for provider "mqtt").
func providerLimit[T ~int | ~int64 | ~float64](v *checker, key string, val *T, def T) {
	switch {
	case *val < 0:
		v.bad(key, "%v is negative: use 0 for no limit", *val)
	case *val == 0 && !v.ix.has(key):
		*val = def
	}
}

// brokerBounds checks the inbound bounds that are set in the file (memoryBudget fills in the others).
func (v *checker) brokerBounds() {
	b := &v.c.Broker
	switch mp := b.MaxPacketSize; {
	case mp == 0 && !v.ix.has("broker.max_packet_size"):
		// filled in by memoryBudget, once api.max_payload is known
	case mp < 256 || mp > mqttMaxPacketSize:
		v.bad("broker.max_packet_size", "%v is outside 256 bytes..%v (the MQTT limit)", mp, Size(mqttMaxPacketSize))
	}
	if v.ix.has("broker.incoming_buffer") {
		v.warn("broker.incoming_buffer", "has no effect any more: broker messages are buffered once, per local subscriber "+
			"(api.subscriber_buffer, api.subscriber_budget); remove the key")
	}
	if b.PoisonAfter < 0 || b.PoisonAfter > 100 {
		v.bad("broker.poison_after", "%d is outside 0..100 (0 turns the rule off)", b.PoisonAfter)
	}
}

// cognito checks the [cognito] table (aws-iot only).
func (v *checker) cognito() {
	c := v.c
	if !c.HasCognito {
		return
	}
	if !v.aws {
		// SPEC.md's example file carries a [cognito] table with provider "mqtt": accept it, say it is unused.
		v.warn("cognito", "ignored: only used with provider %q (broker.provider is %q)", ProviderAWSIoT, c.Broker.Provider)
		return
	}
	switch {
	case c.Cognito.IdentityPoolID == "":
		v.bad("cognito.identity_pool_id", `missing: set it ("<region>:<uuid>") or remove the [cognito] table`)
	case !validPoolID(c.Cognito.IdentityPoolID):
		v.bad("cognito.identity_pool_id", "%q is not an identity pool id (\"<region>:<uuid>\")", c.Cognito.IdentityPoolID)
	}
	if e := c.Cognito.Endpoint; e != "" {
		if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			v.bad("cognito.endpoint", "%q is not an http(s) URL", e)
		}
	}
	switch lp, lf := c.Cognito.LoginProvider, c.Cognito.LoginTokenFile; {
	case lp != "" && lf == "":
		v.bad("cognito.login_provider", "set without cognito.login_token_file: an authenticated identity needs both (the file holds the provider's current ID token), or remove both")
	case lp == "" && lf != "":
		v.bad("cognito.login_token_file", "set without cognito.login_provider: name the identity pool's authentication provider (e.g. \"cognito-idp.<region>.amazonaws.com/<user pool id>\"), or remove both")
	case lp != "" && !validLoginProvider(lp):
		v.bad("cognito.login_provider", "%q is not a provider name: at most 128 bytes of printable characters without spaces, e.g. \"accounts.google.com\"", lp)
	}
}

// queue checks the [queue] table.
func (v *checker) queue() {
	q := &v.c.Queue
	switch q.Overflow {
	case OverflowDropOldest, OverflowReject:
	default:
		v.bad("queue.overflow", "%q: use %q or %q", q.Overflow, OverflowDropOldest, OverflowReject)
	}
	if q.MaxAge.Duration < 0 {
		v.bad("queue.max_age", "%v is negative: use 0 to keep messages until delivered", q.MaxAge.Duration)
	}
	if q.MaxDeadLetters < 0 {
		v.bad("queue.max_dead_letters", "%d is negative", q.MaxDeadLetters)
	}
	if q.MaxBytes < MinQueueBytes {
		v.bad("queue.max_bytes", "%v is below the minimum of %v", q.MaxBytes, MinQueueBytes)
	}
}

// maxPayload checks api.max_payload against the provider's limit (else MQTT's) and the queue, or
// sets the provider's default (smaller for a small queue).
func (v *checker) maxPayload() {
	c, lim := v.c, v.lim
	limit, limitName := Size(mqttMaxPacketSize), "the MQTT limit"
	if lim.MaxPayload > 0 {
		limit, limitName = lim.MaxPayload, "the "+lim.Name+" limit"
	}
	switch p := c.API.MaxPayload; {
	case p == 0 && !v.ix.has("api.max_payload"):
		c.API.MaxPayload = cmp.Or(lim.DefaultPayload, DefaultMaxPayloadMQTT)
		if c.Queue.MaxBytes >= MinQueueBytes && c.API.MaxPayload > c.Queue.MaxBytes/4 {
			c.API.MaxPayload = c.Queue.MaxBytes / 4 // a small queue gets a matching default
		}
	case p <= 0:
		v.bad("api.max_payload", "must be at least 1 byte")
	case p > limit:
		v.bad("api.max_payload", "%v is above %s of %v", p, limitName, limit)
	}
	if c.API.MaxPayload > c.Queue.MaxBytes && c.Queue.MaxBytes >= MinQueueBytes {
		v.bad("api.max_payload", "%v is larger than queue.max_bytes (%v): such a message could never be stored", c.API.MaxPayload, c.Queue.MaxBytes)
	}
}

// memoryBudget checks the [api] bounds and the inbound buffers: keys left out follow the limits they
// must hold; keys set must hold them.
func (v *checker) memoryBudget() {
	a, b, has := &v.c.API, &v.c.Broker, v.ix.has
	if b.MaxPacketSize == 0 && !has("broker.max_packet_size") {
		b.MaxPacketSize = min(max(a.MaxPayload, 0)+PacketOverhead, Size(mqttMaxPacketSize))
	}
	switch {
	case a.MaxBatchBytes < 1:
		v.bad("api.max_batch_bytes", "must be at least 1 byte")
	case a.MaxBatchLines < 1:
		v.bad("api.max_batch_lines", "must be at least 1")
	case !has("api.body_budget"):
		a.BodyBudget = max(a.BodyBudget, a.MaxPayload, a.MaxBatchBytes)
	case a.BodyBudget < a.MaxPayload:
		v.bad("api.body_budget", "%v is smaller than api.max_payload (%v): such a publish could never be read", a.BodyBudget, a.MaxPayload)
	case a.BodyBudget < a.MaxBatchBytes:
		v.bad("api.body_budget", "%v is smaller than api.max_batch_bytes (%v): such a batch could never be read", a.BodyBudget, a.MaxBatchBytes)
	}
	switch {
	case a.SubscriberBuffer < 1:
		v.bad("api.subscriber_buffer", "must be at least 1 byte")
	case !has("api.subscriber_budget"):
		a.SubscriberBudget = max(a.SubscriberBudget, a.SubscriberBuffer)
	case a.SubscriberBudget < a.SubscriberBuffer:
		v.bad("api.subscriber_budget", "%v is smaller than api.subscriber_buffer (%v)", a.SubscriberBudget, a.SubscriberBuffer)
	}
	if a.MaxSubscribers < 1 || a.MaxSubscribers > 10000 {
		v.bad("api.max_subscribers", "%d is outside 1..10000", a.MaxSubscribers)
	}
	if a.MaxConnections < 1 || a.MaxConnections > 10000 {
		v.bad("api.max_connections", "%d is outside 1..10000", a.MaxConnections)
	}
	if d := a.ReadTimeout.Duration; d < 100*time.Millisecond || d > time.Hour {
		v.bad("api.read_timeout", "%v is outside 100ms..1h", d)
	}
	if d := a.IdleTimeout.Duration; d < time.Second || d > 24*time.Hour {
		v.bad("api.idle_timeout", "%v is outside 1s..24h", d)
	}
}

// subscriptions checks [[subscribe]]: the provider's count, each filter's syntax and length, QoS.
func (v *checker) subscriptions() {
	subs, lim := v.c.Subscribe, v.lim
	if lim.MaxSubscriptions > 0 && len(subs) > lim.MaxSubscriptions {
		v.bad("subscribe", "%d subscriptions; %s allows at most %d per connection", len(subs), lim.Name, lim.MaxSubscriptions)
	}
	for i, s := range subs {
		key := fmt.Sprintf("subscribe[%d]", i)
		if s.Topic == "" {
			v.bad(key+".topic", "missing: every [[subscribe]] needs a topic filter")
		} else if _, err := lim.Topic.ParseFilter(s.Topic); err != nil {
			v.bad(key+".topic", "%q: %v", s.Topic, err)
		}
		if s.QoS != 0 && s.QoS != 1 {
			v.bad(key+".qos", "%d: use 0 or 1", s.QoS)
		}
	}
}

// access checks [[access]]: one caller per rule, valid filters.
func (v *checker) access() {
	for i, a := range v.c.Access {
		key := fmt.Sprintf("access[%d]", i)
		n := 0
		for _, set := range []bool{a.User != "", a.UID != nil, a.GID != nil, a.Group != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			v.bad(key, "name exactly one of user, uid, gid or group (found %d)", n)
		}
		if a.UID != nil && *a.UID < 0 {
			v.bad(key+".uid", "%d is negative", *a.UID)
		}
		if a.GID != nil && *a.GID < 0 {
			v.bad(key+".gid", "%d is negative", *a.GID)
		}
		v.filters(key+".publish", a.Publish)
		v.filters(key+".subscribe", a.Subscribe)
		if len(a.Publish) == 0 && len(a.Subscribe) == 0 && n == 1 {
			v.warn(key, "grants neither publish nor subscribe")
		}
	}
}

// filters checks a list of topic filters against MQTT's rules (package topic).
func (v *checker) filters(key string, fs []string) {
	for j, f := range fs {
		if err := topic.ValidateFilter(f); err != nil {
			v.bad(fmt.Sprintf("%s[%d]", key, j), "%q: %v", f, err)
		}
	}
}

func (v *checker) log() {
	l := v.c.Log
	if !slices.Contains(knownLevels, l.Level) {
		v.bad("log.level", "%q: use one of %s", l.Level, strings.Join(knownLevels, ", "))
	}
	if !slices.Contains(knownFormats, l.Format) {
		v.bad("log.format", "%q: use %s", l.Format, strings.Join(knownFormats, " or "))
	}
}

// metrics checks metrics.listen: empty (off) or host:port with a numeric port.
func (v *checker) metrics() {
	addr := v.c.Metrics.Listen
	if addr == "" {
		return
	}
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		v.bad("metrics.listen", "%q: want host:port, e.g. \"127.0.0.1:9464\" (\":9464\" for every address)", addr)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad("metrics.listen", "%q: the port must be a number 0..65535", addr)
	}
	if strings.ContainsAny(host, " /") {
		v.bad("metrics.listen", "%q: %q is not a host name or IP address", addr, host)
	}
}

// validPort accepts an empty port (the scheme's default) or 1..65535.
func validPort(p string) bool {
	if p == "" {
		return true
	}
	n, err := strconv.Atoi(p)
	return err == nil && n >= 1 && n <= 65535
}

// validLoginProvider accepts what Cognito takes as a Logins key: 1 to 128
// bytes, printable, no white space.
func validLoginProvider(p string) bool {
	if len(p) == 0 || len(p) > 128 || !utf8.ValidString(p) {
		return false
	}
	for _, r := range p {
		if r <= ' ' || r == 0x7f || unicode.IsSpace(r) || !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// validPoolID reports whether id is a Cognito identity pool id ("<region>:<uuid>").
func validPoolID(id string) bool {
	_, ok := awsregion.FromID(id)
	return ok
}
