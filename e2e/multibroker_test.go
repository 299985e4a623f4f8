package e2e

import (
	"encoding/json"
	"fmt"
	"net/url"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/internal/fakeaws"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
)

// Issue 11, several brokers at once: two real Mosquitto processes (or Mosquitto and the fake AWS IoT),
// the real binary, the real Unix socket.

// twoBrokers is the routing of these tests: x/# to a only, y/# to b only, both/# to both.
func twoBrokers(urlA, urlB string) []namedBroker {
	return []namedBroker{
		{Name: "a", URL: urlA, Publish: []string{"x/#", "both/#"}},
		{Name: "b", URL: urlB, Publish: []string{"y/#", "both/#"}},
	}
}

// TestMultiBrokerRouting: each message reaches exactly the brokers its topic routes to; ?broker=, an NDJSON
// "broker" and `pub --broker` send to that broker only, whatever its routes; a topic no broker takes is
// a 400 naming it, and nothing of the refused request is stored; /metrics labels by broker.
func TestMultiBrokerRouting(t *testing.T) {
	ma, mb := mosquitto.Start(t), mosquitto.Start(t)
	subA := mosquitto.Subscribe(t, ma.TCPAddr(), "#")
	subB := mosquitto.Subscribe(t, mb.TCPAddr(), "#")
	ag := newBrokersAgent(t, twoBrokers(ma.WSURL(), mb.WSURL()), "")
	ag.start()
	ag.waitBrokers(15*time.Second, "brokers a and b connected", allConnected("a", "b"))

	raw := func(topic, payload, extra string) {
		t.Helper()
		if r := ag.publishReq("topic="+url.QueryEscape(topic)+extra, "application/octet-stream", payload); r.status != 202 {
			t.Fatalf("POST %s%s: %d %s", topic, extra, r.status, r.body)
		}
	}
	raw("x/1", "x1", "")
	raw("y/1", "y1", "")
	raw("both/1", "both1", "")
	raw("x/2", "x2-to-b", "&broker=b") // overrides the routes: b only
	if r := ag.publishReq("", "application/x-ndjson", `{"topic":"x/3","payload":"x3"}
{"topic":"y/3","payload":"y3"}
{"topic":"both/3","payload":"both3"}
{"topic":"y/4","payload":"y4-to-a","broker":"a"}
`); r.status != 202 {
		t.Fatalf("NDJSON batch: %d %s", r.status, r.body)
	}
	if _, e, code := ag.cli("", "pub", "--broker", "a", "-t", "y/5", "-m", "y5-to-a"); code != 0 {
		t.Fatalf("pub --broker a: exit %d: %s", code, e)
	}
	if _, e, code := ag.cli("", "pub", "-t", "both/6", "-m", "both6"); code != 0 {
		t.Fatalf("pub: exit %d: %s", code, e)
	}

	// Refused: nothing of these requests may be stored.
	before, err := ag.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	r := ag.publishReq("topic=z/1", "application/octet-stream", "z1")
	if r.status != 400 || !strings.Contains(errorText(r), "z/1") {
		t.Fatalf("unrouted topic z/1: %d %s; want 400 naming the topic", r.status, r.body)
	}
	t.Logf("unrouted topic: 400 %s", errorText(r))
	r = ag.publishReq("", "application/x-ndjson", "{\"topic\":\"both/7\",\"payload\":\"refused-batch\"}\n{\"topic\":\"z/2\",\"payload\":\"z2\"}\n")
	if r.status != 400 || !strings.Contains(errorText(r), "z/2") {
		t.Fatalf("NDJSON batch with unrouted z/2: %d %s; want 400 naming the topic", r.status, r.body)
	}
	r = ag.publishReq("topic=x/8&broker=nosuch", "application/octet-stream", "to-nosuch")
	if r.status != 400 || !strings.Contains(errorText(r), "nosuch") {
		t.Fatalf("?broker=nosuch: %d %s; want 400 naming the broker", r.status, r.body)
	}
	if _, e, code := ag.cli("", "pub", "-t", "z/3", "-m", "z3"); code == 0 || !strings.Contains(e, "z/3") {
		t.Fatalf("pub to unrouted z/3: exit %d, stderr %q; want a failure naming the topic", code, e)
	}
	after, err := ag.fullStatus()
	if err != nil {
		t.Fatal(err)
	}
	if after.Accepted != before.Accepted {
		t.Fatalf("accepted went from %d to %d over refused requests: something was stored", before.Accepted, after.Accepted)
	}

	// A last message to both: order per broker means everything before it arrived when it does.
	raw("both/end", "end", "")
	want := map[string][]string{
		"a": {"both/1=both1", "both/3=both3", "both/6=both6", "both/end=end", "x/1=x1", "x/3=x3", "y/4=y4-to-a", "y/5=y5-to-a"},
		"b": {"both/1=both1", "both/3=both3", "both/6=both6", "both/end=end", "x/2=x2-to-b", "y/1=y1", "y/3=y3"},
	}
	for name, sub := range map[string]*mosquitto.Sub{"a": subA, "b": subB} {
		testutil.WaitFor(t, 15*time.Second, "both/end at broker "+name, func() bool {
			return slices.Contains(arrivals(sub.Messages()), "both/end=end")
		})
		if got := arrivals(sub.Messages()); !slices.Equal(got, want[name]) {
			t.Fatalf("broker %s got %q\nwant %q", name, got, want[name])
		}
	}
	bs := ag.waitBrokers(10*time.Second, "both queues empty", func(bs map[string]localapi.BrokerStatus) bool {
		return bs["a"].Queue.Depth == 0 && bs["b"].Queue.Depth == 0
	})
	t.Logf("routing: a got %d messages (delivered %d), b got %d (delivered %d)",
		len(want["a"]), bs["a"].Delivered, len(want["b"]), bs["b"].Delivered)
	if bs["a"].Delivered < uint64(len(want["a"])) || bs["b"].Delivered < uint64(len(want["b"])) {
		t.Fatalf("per-broker delivered counters a=%d b=%d, want at least %d and %d", bs["a"].Delivered, bs["b"].Delivered, len(want["a"]), len(want["b"]))
	}
	metrics := ag.getText("/metrics")
	for _, name := range []string{"a", "b"} {
		if !strings.Contains(metrics, fmt.Sprintf("broker=%q", name)) {
			t.Fatalf("/metrics has no series labelled broker=%q:\n%s", name, metrics)
		}
	}
	if code := ag.terminate(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0", code)
	}
}

// TestMultiBrokerOneLinkCut: while broker a's link is cut, b keeps receiving every message of a stream
// routed to both (all of it before a's link comes back), a's messages wait in its queue; once the link
// is restored a gets everything, in order.
func TestMultiBrokerOneLinkCut(t *testing.T) {
	seed := testSeed(t)
	ma, mb := mosquitto.Start(t), mosquitto.Start(t)
	pa, pb := brokerProxy(t, ma), brokerProxy(t, mb)
	subA := mosquitto.Subscribe(t, ma.TCPAddr(), "both/#")
	subB := mosquitto.Subscribe(t, mb.TCPAddr(), "both/#")
	ag := newBrokersAgent(t, twoBrokers("ws://"+pa.Addr()+"/mqtt", "ws://"+pb.Addr()+"/mqtt"), "")
	ag.start()
	before := ag.waitBrokers(15*time.Second, "brokers a and b connected", allConnected("a", "b"))

	s := startStream(t, ag, "both", 2, seed, nil)
	time.Sleep(500 * time.Millisecond) // online: both receive
	pa.Cut()
	ag.waitBrokers(faultKeepalive*3/2+time.Second, "a to notice the cut", func(bs map[string]localapi.BrokerStatus) bool {
		return bs["a"].State != "connected"
	})
	time.Sleep(1500 * time.Millisecond) // a's queue grows, b keeps delivering
	s.stop(t)
	if n := s.failures(); n != 0 {
		t.Fatalf("%d publish requests got no answer although the agent was never stopped", n)
	}

	// Still cut: b has every acknowledged message and an empty queue; a has a backlog.
	cB := newChecker("both", s.ps)
	resB := awaitDelivery(t, subB, cB, 20*time.Second)
	if resB.Lost != 0 {
		t.Fatalf("b: %d acknowledged messages missing while a was cut (b must not wait for a), e.g. %v; status %s",
			resB.Lost, cB.firstMissing(5), ag.rawStatus())
	}
	during := ag.waitBrokers(10*time.Second, "b's queue empty while a is cut", func(bs map[string]localapi.BrokerStatus) bool {
		return bs["b"].Queue.Depth == 0
	})
	if a, b := during["a"], during["b"]; a.State == "connected" || a.Queue.Depth == 0 || b.State != "connected" {
		t.Fatalf("during the cut: a %s with %d queued, b %s with %d queued; want a not connected with a backlog, b connected",
			a.State, a.Queue.Depth, b.State, b.Queue.Depth)
	}
	out, e, code := ag.cli("", "status")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, e)
	}
	t.Logf("`edge-agent status` while a is cut:\n%s", out)
	js, e, code := ag.cli("", "status", "--json")
	if code != 0 {
		t.Fatalf("status --json: exit %d: %s", code, e)
	}
	var cliSt localapi.Status
	if err := json.Unmarshal([]byte(js), &cliSt); err != nil {
		t.Fatalf("status --json: %v\n%s", err, js)
	}
	if a, b := brokerStates(cliSt)["a"], brokerStates(cliSt)["b"]; a.State == "connected" || a.Queue.Depth == 0 || b.State != "connected" {
		t.Fatalf("status --json during the cut: a %q with %d queued, b %q; want a not connected with a backlog, b connected\n%s",
			a.State, a.Queue.Depth, b.State, js)
	}
	cutA := newChecker("both", s.ps)
	cutA.ingest(subA.Messages())
	if cutA.missing() == 0 {
		t.Fatalf("a had every message before its link came back: the cut proved nothing")
	}
	depthA := during["a"].Queue.Depth

	pa.Restore()
	ag.waitBrokers(20*time.Second, "a to reconnect by itself", func(bs map[string]localapi.BrokerStatus) bool {
		return bs["a"].State == "connected" && bs["a"].Connects > before["a"].Connects
	})
	resA := drainAndCheck(t, ag, subA, s, "both")
	resB = awaitDelivery(t, subB, cB, time.Second)
	t.Logf("one link cut: a queued %d and had %d of them missing while cut; a after the restore: %s; b before a came back: %s",
		depthA, cutA.missing(), resA, resB)
	if st := ag.mustStatus(); st.State != "connected" {
		t.Fatalf("overall state %q after the restore", st.State)
	}
}

// TestMultiBrokerKillDuringFanOut: concurrent producers publish to both/#, x/# and y/# while the agent is
// killed with SIGKILL three times and restarted on the same state_dir; every acknowledged message
// reaches every broker it was routed to, in order per producer.
func TestMultiBrokerKillDuringFanOut(t *testing.T) {
	seed := testSeed(t)
	ma, mb := mosquitto.Start(t), mosquitto.Start(t)
	subs := map[string]*mosquitto.Sub{
		"a both": mosquitto.Subscribe(t, ma.TCPAddr(), "both/#"),
		"b both": mosquitto.Subscribe(t, mb.TCPAddr(), "both/#"),
		"a x":    mosquitto.Subscribe(t, ma.TCPAddr(), "x/#"),
		"b y":    mosquitto.Subscribe(t, mb.TCPAddr(), "y/#"),
	}
	ag := newBrokersAgent(t, twoBrokers(ma.WSURL(), mb.WSURL()), "")
	ag.start()
	ag.waitBrokers(15*time.Second, "brokers a and b connected", allConnected("a", "b"))

	streams := map[string]*stream{
		"both": startStream(t, ag, "both", 3, seed, nil),
		"x":    startStream(t, ag, "x", 1, seed+1, nil),
		"y":    startStream(t, ag, "y", 1, seed+2, nil),
	}
	const kills = 3
	backlog := 0
	for range kills {
		time.Sleep(700 * time.Millisecond)
		if st, err := ag.apiStatus(); err == nil && st.Queue.Depth > 0 {
			backlog++
		}
		ag.kill()
		time.Sleep(200 * time.Millisecond) // producers meet a dead socket
		ag.start()
	}
	time.Sleep(500 * time.Millisecond)
	for _, s := range streams {
		s.stop(t)
	}
	if !ag.drained(30 * time.Second) {
		t.Fatalf("the queues did not drain within 30s after the last restart; status %s", ag.rawStatus())
	}
	unanswered := 0
	for _, s := range streams {
		for _, p := range s.ps {
			unanswered += p.unanswered
		}
	}
	for _, name := range []string{"a both", "b both", "a x", "b y"} {
		prefix := strings.Fields(name)[1]
		c := newChecker(prefix, streams[prefix].ps)
		res := awaitDelivery(t, subs[name], c, 20*time.Second)
		t.Logf("kill -9 during fan-out, %s/# at broker %s: %s", prefix, name[:1], res)
		if res.Lost != 0 {
			t.Fatalf("%s/# at broker %s: %d acknowledged messages lost, e.g. %v", prefix, name[:1], res.Lost, c.firstMissing(10))
		}
		if res.Acked == 0 {
			t.Fatalf("%s/#: nothing acknowledged: the test proved nothing", prefix)
		}
	}
	t.Logf("kills %d (the queue was non-empty just before %d of them); %d numbers got no answer (agent down)", kills, backlog, unanswered)
	if code := ag.terminate(); code != 0 {
		t.Fatalf("SIGTERM exit code %d, want 0", code)
	}
}

// TestMultiBrokerSubscribeBoth: one local stream with no broker gets messages published directly on
// either Mosquitto, each line naming its broker; a stream with &broker=a and `sub --broker a` get a's
// only.
func TestMultiBrokerSubscribeBoth(t *testing.T) {
	ma, mb := mosquitto.Start(t), mosquitto.Start(t)
	ag := newBrokersAgent(t, twoBrokers(ma.WSURL(), mb.WSURL()),
		"\n[[subscribe]]\ntopic = \"cfg/#\"\n\n[[subscribe]]\nbroker = \"b\"\ntopic = \"cfgb/#\"\n")
	ag.start()
	ag.waitBrokers(15*time.Second, "brokers a and b connected", allConnected("a", "b"))

	all := ag.openStream("topic=" + url.QueryEscape("cmd/#"))
	onlyA := ag.openStream("topic=" + url.QueryEscape("cmd/#") + "&broker=a")
	cli := exec.Command(agentBin, "sub", "--broker", "a", "-t", "cmd/#", "-v", "-C", "3")
	cli.Env = append(cli.Environ(), "EDGE_AGENT_SOCKET="+ag.sock)
	var cliOut testutil.Buffer
	cli.Stdout, cli.Stderr = &cliOut, &cliOut
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	var cliErr error
	cliDone := make(chan struct{})
	go func() { cliErr = cli.Wait(); close(cliDone) }()
	t.Cleanup(func() {
		_ = cli.Process.Kill()
		<-cliDone
	})

	// The streams' broker subscriptions are in place at some point after the header: publish on both
	// Mosquittos until each stream saw what it must.
	fromBroker := func(ms []localapi.Message, name string) int {
		n := 0
		for _, m := range ms {
			if m.Broker == name {
				n++
			}
		}
		return n
	}
	cliExited := false
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; ; i++ {
		select {
		case <-cliDone:
			cliExited = true
		default:
		}
		got := all.messages()
		if fromBroker(got, "a") >= 3 && fromBroker(got, "b") >= 3 && fromBroker(onlyA.messages(), "a") >= 3 && cliExited {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 20s: stream without broker %q; stream with broker=a %q; sub --broker a printed %q",
				all.rawLines(), onlyA.rawLines(), cliOut.String())
		}
		mosquitto.Publish(t, ma.TCPAddr(), "cmd/gw", []byte(fmt.Sprintf("from-a-%d", i)), 1, false)
		mosquitto.Publish(t, mb.TCPAddr(), "cmd/gw", []byte(fmt.Sprintf("from-b-%d", i)), 1, false)
		time.Sleep(100 * time.Millisecond)
	}
	for _, m := range all.messages() {
		p := payloadOf(m)
		want, _, _ := strings.Cut(strings.TrimPrefix(p, "from-"), "-")
		if m.Broker != want || m.Topic != "cmd/gw" {
			t.Fatalf("stream without broker: %+v (payload %q) carries broker %q, want %q", m, p, m.Broker, want)
		}
	}
	for _, m := range onlyA.messages() {
		if m.Broker != "a" || !strings.HasPrefix(payloadOf(m), "from-a-") {
			t.Fatalf("stream with broker=a got %q from broker %q", payloadOf(m), m.Broker)
		}
	}
	if cliErr != nil {
		t.Fatalf("sub --broker a: %v\n%s", cliErr, cliOut.String())
	}
	if strings.Contains(cliOut.String(), "from-b-") || strings.Count(cliOut.String(), "from-a-") != 3 {
		t.Fatalf("sub --broker a -C 3 printed %q", cliOut.String())
	}
	t.Logf("stream without broker: %d from a, %d from b; stream with broker=a: %d lines; sub --broker a printed:\n%s",
		fromBroker(all.messages(), "a"), fromBroker(all.messages(), "b"), len(onlyA.messages()), cliOut.String())
}

// TestMultiBrokerMosquittoAndAWS: one broker is the fake AWS IoT (provider aws-iot, credentials from the
// fake Cognito of its [broker.cognito], every URL checked by the fake's own SigV4 verification), the
// other a Mosquitto; routing sends to each what its routes take.
func TestMultiBrokerMosquittoAndAWS(t *testing.T) {
	plant := mosquitto.Start(t)
	upstream := mosquitto.Start(t) // behind the fake AWS IoT
	iot := fakeaws.NewIoT(t, fakeaws.IoTOptions{Upstream: upstream.TCPAddr()})
	cog := fakeaws.NewCognito(t)
	cog.OnIssue(iot.AllowCredentials)
	subAWS := mosquitto.Subscribe(t, upstream.TCPAddr(), "#")
	subPlant := mosquitto.Subscribe(t, plant.TCPAddr(), "#")
	ag := newBrokersAgent(t, []namedBroker{
		{Name: "aws", Provider: "aws-iot", URL: iot.URL(), Publish: []string{"telemetry/#"},
			Lines:  fmt.Sprintf("region = %q\nca_file = %q\nkeepalive = \"30s\"\n", iot.Region(), iot.CAFile()),
			Tables: fmt.Sprintf("[broker.cognito]\nidentity_pool_id = %q\nendpoint = %q\n", cog.PoolID(), cog.URL())},
		{Name: "plant", URL: plant.WSURL(), Publish: []string{"alarms/#", "telemetry/#"}},
	}, "")
	ag.start()
	bs := ag.waitBrokers(20*time.Second, "aws and plant connected", allConnected("aws", "plant"))

	for _, m := range []struct{ topic, payload, extra string }{
		{"telemetry/t", "t1", ""},
		{"alarms/a", "a1", ""},
		{"alarms/a", "a2-to-aws", "&broker=aws"},
		{"telemetry/end", "end", ""},
	} {
		if r := ag.publishReq("topic="+url.QueryEscape(m.topic)+m.extra, "text/plain", m.payload); r.status != 202 {
			t.Fatalf("POST %s%s: %d %s", m.topic, m.extra, r.status, r.body)
		}
	}
	want := map[string][]string{
		"aws":   {"alarms/a=a2-to-aws", "telemetry/end=end", "telemetry/t=t1"},
		"plant": {"alarms/a=a1", "telemetry/end=end", "telemetry/t=t1"},
	}
	for name, sub := range map[string]*mosquitto.Sub{"aws": subAWS, "plant": subPlant} {
		testutil.WaitFor(t, 15*time.Second, "telemetry/end at "+name, func() bool {
			return slices.Contains(arrivals(sub.Messages()), "telemetry/end=end")
		})
		if got := arrivals(sub.Messages()); !slices.Equal(got, want[name]) {
			t.Fatalf("%s got %q\nwant %q", name, got, want[name])
		}
	}

	// Every accepted upgrade was signed with credentials Cognito issued, for iotdevicegateway, with the
	// session token; the fake verified each signature itself.
	issued := map[string]bool{}
	for _, c := range cog.Issued() {
		issued[c.AccessKeyID] = true
	}
	accepted := 0
	for _, a := range iot.Attempts() {
		if !a.Accepted {
			continue
		}
		accepted++
		if !issued[a.AccessKeyID] || !a.Token || a.Service != "iotdevicegateway" || a.Region != iot.Region() {
			t.Fatalf("accepted IoT upgrade %+v; issued keys %v", a, issued)
		}
	}
	if accepted == 0 {
		t.Fatalf("the fake AWS IoT accepted no upgrade; attempts %+v", iot.Attempts())
	}
	aws, pl := bs["aws"], bs["plant"]
	if aws.Provider != "aws-iot" || aws.AWS == nil || aws.AWS.IdentityID == "" || pl.Provider != "mqtt" || pl.AWS != nil {
		t.Fatalf("status brokers: aws %+v, plant %+v", aws, pl)
	}
	if strings.Contains(ag.rawStatus(), "X-Amz-Signature") {
		t.Fatalf("a signature reached the status: %s", ag.rawStatus())
	}
	t.Logf("aws (identity %s, %d signed upgrades accepted) and plant both connected; routed as configured", aws.AWS.IdentityID, accepted)
}

// TestMultiBrokerUpgradeFromOneBroker: messages queued by the single [broker] form (the broker down) are
// delivered after the config is rewritten into [[broker]] form: to the broker named "default" when
// there are several, to the only broker whatever its name otherwise.
func TestMultiBrokerUpgradeFromOneBroker(t *testing.T) {
	for _, tc := range []struct {
		name  string
		named string // the broker that inherits the queue
		other bool   // a second broker, which must get none of it
	}{
		{"default-of-two", "default", true},
		{"only-broker", "plant", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			const n = 200
			ma := mosquitto.Start(t)
			ma.Stop() // down: everything stays queued
			ag := newAgentWith(t, ma.WSURL(), agentOptions{FastReconnect: true})
			ag.start()
			if _, e, code := ag.cli(numbered(1, n), "pub", "-t", "up/seq", "-l"); code != 0 {
				t.Fatalf("pub -l: exit %d: %s", code, e)
			}
			if d := ag.mustStatus().Queue.Depth; d != n {
				t.Fatalf("queue depth %d with the broker down, want %d", d, n)
			}
			if code := ag.terminate(); code != 0 {
				t.Fatalf("SIGTERM exit code %d, want 0", code)
			}

			ma.Restart(t)
			subA := mosquitto.Subscribe(t, ma.TCPAddr(), "up/#")
			brokers := []namedBroker{{Name: tc.named, URL: ma.WSURL()}}
			var subO *mosquitto.Sub
			if tc.other {
				mo := mosquitto.Start(t)
				subO = mosquitto.Subscribe(t, mo.TCPAddr(), "#")
				brokers = append(brokers, namedBroker{Name: "other", URL: mo.WSURL(), Publish: []string{"other/#"}})
			}
			ag.writeBrokers(brokers, "")
			ag.start()
			msgs, err := subA.WaitDistinct(n, 30*time.Second)
			if err != nil {
				t.Fatalf("after the upgrade, broker %q: %v; status %s", tc.named, err, ag.rawStatus())
			}
			dups, err := mosquitto.CheckNumbered(msgs, n)
			if err != nil {
				t.Fatalf("broker %q: %v", tc.named, err)
			}
			bs := ag.waitBrokers(10*time.Second, "the queue drained", func(bs map[string]localapi.BrokerStatus) bool {
				return bs[tc.named].State == "connected" && bs[tc.named].Queue.Depth == 0
			})
			if tc.other {
				if o := bs["other"]; o.Queue.Depth != 0 || len(arrivals(subO.Messages())) != 0 {
					t.Fatalf("broker other: %d queued, got %q; the old queue belongs to default only", o.Queue.Depth, arrivals(subO.Messages()))
				}
			}
			t.Logf("upgrade (%s): %d queued by the single-broker form, %d delivered to %q in order, %d duplicates", tc.name, n, n, tc.named, dups)
			if code := ag.terminate(); code != 0 {
				t.Fatalf("SIGTERM exit code %d, want 0", code)
			}
		})
	}
}
