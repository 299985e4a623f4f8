package config

import (
	"cmp"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// AWS IoT Core limits that the configuration is checked against.
const (
	awsMinKeepalive   = 30 * time.Second
	awsMaxKeepalive   = 1200 * time.Second
	awsMaxClientID    = 128
	awsMaxInflight    = 100
	awsMaxSubscribe   = 50
	awsPublishRate    = 100       // publishes per second per connection
	awsByteRate       = 512 * KiB // bytes per second per connection
	mqttMaxPacketSize = 268435455 // [MQTT-2.2.3] variable byte integer limit
)

var (
	awsIoTHost   = regexp.MustCompile(`^[a-z0-9.-]+\.iot\.([a-z]{2}(?:-[a-z]+)+-[0-9]+)\.amazonaws\.com(?:\.cn)?$`)
	awsRegion    = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+$`)
	cognitoPool  = regexp.MustCompile(`^[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9a-fA-F-]+$`)
	knownLevels  = []string{"debug", "info", "warn", "error"}
	knownFormats = []string{"text", "json"}
)

// validate checks the decoded configuration, fills in the defaults that
// depend on other keys and collects Warnings. Every error names its key and,
// where the document has it, the line.
func validate(c *Config, ix *index) error {
	var errs []*Error
	bad := func(key string, format string, args ...any) {
		errs = append(errs, ix.errorf(key, nil, format, args...))
	}
	warn := func(key, format string, args ...any) {
		msg := key + ": " + fmt.Sprintf(format, args...)
		if l := ix.lineOf(key); l > 0 {
			msg = fmt.Sprintf("%s:%d: %s", ix.file, l, msg)
		}
		c.Warnings = append(c.Warnings, msg)
	}
	b := &c.Broker
	aws := b.Provider == ProviderAWSIoT

	switch b.Provider {
	case ProviderMQTT, ProviderAWSIoT:
	default:
		bad("broker.provider", "%q is not a provider: use %q or %q", b.Provider, ProviderMQTT, ProviderAWSIoT)
	}

	// client_id [MQTT-3.1.3-5]: a UTF-8 string of at most 65535 bytes.
	switch {
	case c.ClientID == "":
		bad("client_id", "empty: set client_id (the default, the host name, could not be read)")
	case !utf8.ValidString(c.ClientID) || strings.ContainsRune(c.ClientID, 0):
		bad("client_id", "must be valid UTF-8 without NUL characters")
	case len(c.ClientID) > 65535:
		bad("client_id", "longer than 65535 bytes")
	case aws && len(c.ClientID) > awsMaxClientID:
		bad("client_id", "%d bytes; AWS IoT allows at most %d", len(c.ClientID), awsMaxClientID)
	case aws && strings.HasPrefix(c.ClientID, "$"):
		bad("client_id", "must not start with '$' for AWS IoT (reserved)")
	}
	if c.StateDir == "" {
		bad("state_dir", "empty: set a directory for the queue database")
	}
	switch {
	case c.Socket == "":
		bad("socket", "empty: set the path of the local API socket")
	case len(c.Socket) > MaxSocketPath:
		bad("socket", "path is %d bytes; Linux binds Unix sockets of at most %d bytes: choose a shorter path", len(c.Socket), MaxSocketPath)
	case strings.ContainsRune(c.Socket, 0):
		bad("socket", "path contains a NUL character")
	}

	// broker.url
	if b.URL == "" {
		bad("broker.url", `missing: set the broker's WebSocket URL, e.g. "wss://broker.example.com/mqtt"`)
	} else if u, err := url.Parse(b.URL); err != nil {
		bad("broker.url", "not a URL: %v", errors.Unwrap(err))
	} else {
		switch {
		case u.Scheme != "ws" && u.Scheme != "wss":
			bad("broker.url", "scheme %q: use ws:// or wss:// (MQTT over WebSocket)", u.Scheme)
		case aws && u.Scheme != "wss":
			bad("broker.url", "AWS IoT needs wss://, not %s://", u.Scheme)
		case u.Hostname() == "":
			bad("broker.url", "no host in %q", b.URL)
		case u.User != nil:
			bad("broker.url", "must not hold credentials: use broker.username and broker.password_file")
		case !validPort(u.Port()):
			bad("broker.url", "port %q is not a TCP port: use 1..65535, or leave it out for the scheme's default", u.Port())
		case aws && u.RawQuery != "":
			bad("broker.url", "must not have a query string for AWS IoT: the agent signs the URL itself")
		}
		if aws && b.Region == "" && u.Hostname() != "" {
			if m := awsIoTHost.FindStringSubmatch(strings.ToLower(u.Hostname())); m != nil {
				b.Region = m[1]
			} else {
				bad("broker.region", "missing, and the host %q is not of the form <id>.iot.<region>.amazonaws.com: set region", u.Hostname())
			}
		}
	}
	if b.Region != "" && !aws {
		warn("broker.region", "ignored: only used with provider %q", ProviderAWSIoT)
	} else if b.Region != "" && !awsRegion.MatchString(b.Region) {
		bad("broker.region", "%q is not an AWS region name (like \"eu-west-1\")", b.Region)
	}
	if aws && b.Username != "" {
		bad("broker.username", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}
	if aws && b.PasswordFile != "" {
		bad("broker.password_file", "not used with provider %q (credentials come from Cognito or the AWS environment)", ProviderAWSIoT)
	}

	// keepalive [MQTT-3.1.2.10]: seconds in a two-byte integer.
	switch k := b.Keepalive.Duration; {
	case k < time.Second || k > 65535*time.Second:
		bad("broker.keepalive", "%v is outside 1s..65535s", k)
	case k%time.Second != 0:
		bad("broker.keepalive", "%v: MQTT counts keepalive in whole seconds", k)
	case aws && k < awsMinKeepalive:
		b.Keepalive.Duration = awsMinKeepalive
		warn("broker.keepalive", "%v is below the AWS IoT minimum; using %v", k, awsMinKeepalive)
	case aws && k > awsMaxKeepalive:
		b.Keepalive.Duration = awsMaxKeepalive
		warn("broker.keepalive", "%v is above the AWS IoT maximum; using %v", k, awsMaxKeepalive)
	}
	switch {
	case b.MaxInflight < 1 || b.MaxInflight > 65535:
		bad("broker.max_inflight", "%d is outside 1..65535", b.MaxInflight)
	case aws && b.MaxInflight > awsMaxInflight:
		warn("broker.max_inflight", "%d is above the AWS IoT limit of %d unacknowledged QoS 1 messages; using %d", b.MaxInflight, awsMaxInflight, awsMaxInflight)
		b.MaxInflight = awsMaxInflight
	}

	switch {
	case b.MaxPublishRate < 0:
		bad("broker.max_publish_rate", "%v is negative: use 0 for no limit", b.MaxPublishRate)
	case b.MaxPublishRate == 0 && aws && !ix.has("broker.max_publish_rate"):
		b.MaxPublishRate = awsPublishRate
	}
	switch {
	case b.MaxByteRate < 0:
		bad("broker.max_byte_rate", "%v is negative: use 0 for no limit", b.MaxByteRate)
	case b.MaxByteRate == 0 && aws && !ix.has("broker.max_byte_rate"):
		b.MaxByteRate = awsByteRate
	}
	switch {
	case b.MaxSubscriptions < 0:
		bad("broker.max_subscriptions", "%d is negative: use 0 for no limit", b.MaxSubscriptions)
	case b.MaxSubscriptions == 0 && aws && !ix.has("broker.max_subscriptions"):
		b.MaxSubscriptions = awsMaxSubscribe
	}

	switch rmin, rmax := b.ReconnectMin.Duration, b.ReconnectMax.Duration; {
	case rmin < 10*time.Millisecond || rmin > time.Hour:
		bad("broker.reconnect_min", "%v is outside 10ms..1h", rmin)
	case rmax < rmin || rmax > 24*time.Hour:
		bad("broker.reconnect_max", "%v: must be at least reconnect_min (%v) and at most 24h", rmax, rmin)
	}

	switch mp := b.MaxPacketSize; {
	case mp == 0 && !ix.has("broker.max_packet_size"):
		// filled in below, once api.max_payload is known
	case mp < 256 || mp > mqttMaxPacketSize:
		bad("broker.max_packet_size", "%v is outside 256 bytes..%v (the MQTT limit)", mp, Size(mqttMaxPacketSize))
	}
	if b.IncomingBuffer < 0 {
		bad("broker.incoming_buffer", "%v is negative", b.IncomingBuffer)
	}
	if b.PoisonAfter < 0 || b.PoisonAfter > 100 {
		bad("broker.poison_after", "%d is outside 0..100 (0 turns the rule off)", b.PoisonAfter)
	}

	// [cognito]
	if c.HasCognito && !aws {
		// SPEC.md's example file carries a [cognito] table with provider "mqtt": accept it, say it is unused.
		warn("cognito", "ignored: only used with provider %q (broker.provider is %q)", ProviderAWSIoT, b.Provider)
	} else if c.HasCognito {
		switch {
		case c.Cognito.IdentityPoolID == "":
			bad("cognito.identity_pool_id", `missing: set it ("<region>:<uuid>") or remove the [cognito] table`)
		case !cognitoPool.MatchString(c.Cognito.IdentityPoolID):
			bad("cognito.identity_pool_id", "%q is not an identity pool id (\"<region>:<uuid>\")", c.Cognito.IdentityPoolID)
		}
		if e := c.Cognito.Endpoint; e != "" {
			if u, err := url.Parse(e); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
				bad("cognito.endpoint", "%q is not an http(s) URL", e)
			}
		}
		switch lp, lf := c.Cognito.LoginProvider, c.Cognito.LoginTokenFile; {
		case lp != "" && lf == "":
			bad("cognito.login_provider", "set without cognito.login_token_file: an authenticated identity needs both (the file holds the provider's current ID token), or remove both")
		case lp == "" && lf != "":
			bad("cognito.login_token_file", "set without cognito.login_provider: name the identity pool's authentication provider (e.g. \"cognito-idp.<region>.amazonaws.com/<user pool id>\"), or remove both")
		case lp != "" && !validLoginProvider(lp):
			bad("cognito.login_provider", "%q is not a provider name: at most 128 bytes of printable characters without spaces, e.g. \"accounts.google.com\"", lp)
		}
	}

	// [queue]
	switch c.Queue.Overflow {
	case OverflowDropOldest, OverflowReject:
	default:
		bad("queue.overflow", "%q: use %q or %q", c.Queue.Overflow, OverflowDropOldest, OverflowReject)
	}
	if c.Queue.MaxAge.Duration < 0 {
		bad("queue.max_age", "%v is negative: use 0 to keep messages until delivered", c.Queue.MaxAge.Duration)
	}
	if c.Queue.MaxDeadLetters < 0 {
		bad("queue.max_dead_letters", "%d is negative", c.Queue.MaxDeadLetters)
	}
	if c.Queue.MaxBytes < MinQueueBytes {
		bad("queue.max_bytes", "%v is below the minimum of %v", c.Queue.MaxBytes, MinQueueBytes)
	}

	// [api]
	limit, limitName := Size(mqttMaxPacketSize), "the MQTT limit"
	if aws {
		limit, limitName = DefaultMaxPayloadAWSIoT, "the AWS IoT limit"
	}
	switch p := c.API.MaxPayload; {
	case p == 0 && !ix.has("api.max_payload"):
		c.API.MaxPayload = DefaultMaxPayloadMQTT
		if aws {
			c.API.MaxPayload = DefaultMaxPayloadAWSIoT
		}
		if c.Queue.MaxBytes >= MinQueueBytes && c.API.MaxPayload > c.Queue.MaxBytes/4 {
			c.API.MaxPayload = c.Queue.MaxBytes / 4 // a small queue gets a matching default
		}
	case p <= 0:
		bad("api.max_payload", "must be at least 1 byte")
	case p > limit:
		bad("api.max_payload", "%v is above %s of %v", p, limitName, limit)
	}
	if c.API.MaxPayload > c.Queue.MaxBytes && c.Queue.MaxBytes >= MinQueueBytes {
		bad("api.max_payload", "%v is larger than queue.max_bytes (%v): such a message could never be stored", c.API.MaxPayload, c.Queue.MaxBytes)
	}

	// The memory budget: keys left out follow the limits they must hold; keys set must hold them.
	a := &c.API
	if b.MaxPacketSize == 0 && !ix.has("broker.max_packet_size") {
		b.MaxPacketSize = min(max(a.MaxPayload, 0)+PacketOverhead, Size(mqttMaxPacketSize))
	}
	switch {
	case !ix.has("broker.incoming_buffer"):
		b.IncomingBuffer = max(b.IncomingBuffer, b.MaxPacketSize)
	case b.IncomingBuffer < b.MaxPacketSize:
		bad("broker.incoming_buffer", "%v is smaller than broker.max_packet_size (%v): the largest message could never be passed on", b.IncomingBuffer, b.MaxPacketSize)
	}
	switch {
	case a.MaxBatchBytes < 1:
		bad("api.max_batch_bytes", "must be at least 1 byte")
	case a.MaxBatchLines < 1:
		bad("api.max_batch_lines", "must be at least 1")
	case !ix.has("api.body_budget"):
		a.BodyBudget = max(a.BodyBudget, a.MaxPayload, a.MaxBatchBytes)
	case a.BodyBudget < a.MaxPayload:
		bad("api.body_budget", "%v is smaller than api.max_payload (%v): such a publish could never be read", a.BodyBudget, a.MaxPayload)
	case a.BodyBudget < a.MaxBatchBytes:
		bad("api.body_budget", "%v is smaller than api.max_batch_bytes (%v): such a batch could never be read", a.BodyBudget, a.MaxBatchBytes)
	}
	switch {
	case a.SubscriberBuffer < 1:
		bad("api.subscriber_buffer", "must be at least 1 byte")
	case !ix.has("api.subscriber_budget"):
		a.SubscriberBudget = max(a.SubscriberBudget, a.SubscriberBuffer)
	case a.SubscriberBudget < a.SubscriberBuffer:
		bad("api.subscriber_budget", "%v is smaller than api.subscriber_buffer (%v)", a.SubscriberBudget, a.SubscriberBuffer)
	}
	if a.MaxSubscribers < 1 || a.MaxSubscribers > 10000 {
		bad("api.max_subscribers", "%d is outside 1..10000", a.MaxSubscribers)
	}
	if a.MaxConnections < 1 || a.MaxConnections > 10000 {
		bad("api.max_connections", "%d is outside 1..10000", a.MaxConnections)
	}
	if d := a.ReadTimeout.Duration; d < 100*time.Millisecond || d > time.Hour {
		bad("api.read_timeout", "%v is outside 100ms..1h", d)
	}
	if d := a.IdleTimeout.Duration; d < time.Second || d > 24*time.Hour {
		bad("api.idle_timeout", "%v is outside 1s..24h", d)
	}

	// [[subscribe]]
	if aws && len(c.Subscribe) > awsMaxSubscribe {
		bad("subscribe", "%d subscriptions; AWS IoT allows at most %d per connection", len(c.Subscribe), awsMaxSubscribe)
	}
	for i, s := range c.Subscribe {
		key := fmt.Sprintf("subscribe[%d]", i)
		if s.Topic == "" {
			bad(key+".topic", "missing: every [[subscribe]] needs a topic filter")
		} else if err := checkFilter(s.Topic); err != nil {
			bad(key+".topic", "%q: %v", s.Topic, err)
		}
		if s.QoS != 0 && s.QoS != 1 {
			bad(key+".qos", "%d: use 0 or 1", s.QoS)
		}
	}

	// [[access]]
	for i, a := range c.Access {
		key := fmt.Sprintf("access[%d]", i)
		n := 0
		for _, set := range []bool{a.User != "", a.UID != nil, a.GID != nil, a.Group != ""} {
			if set {
				n++
			}
		}
		if n != 1 {
			bad(key, "name exactly one of user, uid, gid or group (found %d)", n)
		}
		if a.UID != nil && *a.UID < 0 {
			bad(key+".uid", "%d is negative", *a.UID)
		}
		if a.GID != nil && *a.GID < 0 {
			bad(key+".gid", "%d is negative", *a.GID)
		}
		for j, f := range a.Publish {
			if err := checkFilter(f); err != nil {
				bad(fmt.Sprintf("%s.publish[%d]", key, j), "%q: %v", f, err)
			}
		}
		for j, f := range a.Subscribe {
			if err := checkFilter(f); err != nil {
				bad(fmt.Sprintf("%s.subscribe[%d]", key, j), "%q: %v", f, err)
			}
		}
		if len(a.Publish) == 0 && len(a.Subscribe) == 0 && n == 1 {
			warn(key, "grants neither publish nor subscribe")
		}
	}

	// [log]
	if !slices.Contains(knownLevels, c.Log.Level) {
		bad("log.level", "%q: use one of %s", c.Log.Level, strings.Join(knownLevels, ", "))
	}
	if !slices.Contains(knownFormats, c.Log.Format) {
		bad("log.format", "%q: use %s", c.Log.Format, strings.Join(knownFormats, " or "))
	}

	if len(errs) == 0 {
		return nil
	}
	slices.SortStableFunc(errs, func(a, b *Error) int {
		if (a.Line == 0) != (b.Line == 0) { // errors without a line go last
			if a.Line == 0 {
				return 1
			}
			return -1
		}
		return cmp.Compare(a.Line, b.Line)
	})
	out := make([]error, len(errs))
	for i, e := range errs {
		out[i] = e
	}
	return errors.Join(out...)
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
