package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/edge-agent/edge-agent/config"
	"github.com/edge-agent/edge-agent/internal/mosquitto"
	"github.com/edge-agent/edge-agent/internal/testutil"
	"github.com/edge-agent/edge-agent/localapi"
	"github.com/edge-agent/edge-agent/queue"
)

// brokerSpec is one broker of a test config.
type brokerSpec struct {
	name    string
	url     string
	publish []string
}

// brokersConfig is a resolved config with one broker per spec, each as a [[broker]] table with
// provider mqtt would make it; subs are its [[subscribe]] entries.
func brokersConfig(t *testing.T, state, sock string, subs []config.Subscribe, specs ...brokerSpec) *config.Config {
	t.Helper()
	toml := fmt.Sprintf(`
client_id = "test-%d"
state_dir = %q
socket    = %q
[broker]
provider  = "mqtt"
url       = %q
keepalive = "5s"
reconnect_min = "50ms"
reconnect_max = "500ms"
`, time.Now().UnixNano(), state, sock, specs[0].url)
	cfg, err := config.Parse([]byte(toml), "test.toml")
	if err != nil {
		t.Fatalf("config: %v\n%s", err, toml)
	}
	one := cfg.Brokers[0]
	cfg.Brokers = nil
	for _, s := range specs {
		b := one
		b.Name, b.URL, b.Publish = s.name, s.url, s.publish
		cfg.Brokers = append(cfg.Brokers, b)
	}
	cfg.Broker = cfg.Brokers[0]
	cfg.Subscribe = subs
	return cfg
}

// startBrokers runs an agent with the brokers of specs.
func startBrokers(t *testing.T, subs []config.Subscribe, specs ...brokerSpec) *testAgent {
	t.Helper()
	state, sock := t.TempDir(), testutil.SocketPath(t, "agent.sock")
	return startAgentConfig(t, brokersConfig(t, state, sock, subs, specs...), state, sock)
}

// payloads are the payloads of msgs, in arrival order.
func payloads(msgs []mosquitto.Msg) []string {
	out := make([]string, len(msgs))
	for i, m := range msgs {
		out[i] = m.Topic + "=" + string(m.Payload)
	}
	return out
}

// With one broker, its publish filters route too: a topic they do not take is 400 naming the topic
// and the routes, ?broker=NAME (Route with a name) sends it anyway, and an unknown name is refused
// with the names there are.
func TestRoutesWithOneBroker(t *testing.T) {
	m := mosquitto.Start(t)
	sub := mosquitto.Subscribe(t, m.TCPAddr(), "#")
	ta := startBrokers(t, nil, brokerSpec{config.DefaultBrokerName, m.WSURL(), []string{"telemetry/#"}})
	testutil.WaitFor(t, 10*time.Second, "connected", func() bool { return ta.status().State == "connected" })

	r := ta.publish("x/y", "no")
	if r.status != 400 || !strings.Contains(r.raw, `no broker takes topic \"x/y\": default takes telemetry/#`) {
		t.Fatalf("unrouted topic: %d %s", r.status, r.raw)
	}
	if r := ta.publish("telemetry/1", "1"); r.status != 202 {
		t.Fatalf("routed topic: %d %s", r.status, r.raw)
	}
	to, err := ta.a.Route("x/y", config.DefaultBrokerName)
	if err != nil || to != queue.Lane(0) {
		t.Fatalf("Route(x/y, default) = %v, %v", to, err)
	}
	if _, err := ta.a.Store(context.Background(), []queue.Message{{Topic: "x/y", Payload: []byte("2"), QoS: 1}}, []queue.Targets{to}); err != nil {
		t.Fatal(err)
	}
	if _, err := ta.a.Route("x/y", "plant"); !errors.Is(err, localapi.ErrBadInput) || !strings.Contains(err.Error(), `no broker named "plant" (brokers: default)`) {
		t.Fatalf("unknown broker: %v", err)
	}
	if _, err := ta.a.Route("x/+", ""); err == nil || strings.Contains(err.Error(), "no broker takes") {
		t.Fatalf("a wildcard topic is refused for what it is, not as unrouted: %v", err)
	}
	msgs, err := sub.WaitCount(2, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got := payloads(msgs); got[0] != "telemetry/1=1" || got[1] != "x/y=2" {
		t.Fatalf("broker got %v", got)
	}
	if _, err := ta.a.Identity(context.Background(), ""); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("identity without aws-iot: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "delivered", func() bool { return ta.status().Delivered == 2 })
	st := ta.status()
	if len(st.Brokers) != 1 || st.Brokers[0].Name != "default" || st.Brokers[0].Accepted != 2 ||
		st.Brokers[0].Delivered != 2 || st.Accepted != 2 || strings.Join(st.Brokers[0].Publish, ",") != "telemetry/#" {
		t.Fatalf("status: accepted %d, brokers %+v", st.Accepted, st.Brokers)
	}
}

// Two brokers: a message goes to every broker whose publish filters take its topic, a named broker
// gets it whatever its filters, an unrouted topic is 400 naming every route, and the status shows
// both brokers and their sums.
func TestTwoBrokersRoute(t *testing.T) {
	ma, mp := mosquitto.Start(t), mosquitto.Start(t)
	subA, subP := mosquitto.Subscribe(t, ma.TCPAddr(), "#"), mosquitto.Subscribe(t, mp.TCPAddr(), "#")
	ta := startBrokers(t, nil,
		brokerSpec{"aws", ma.WSURL(), []string{"telemetry/#"}},
		brokerSpec{"plant", mp.WSURL(), []string{"alarms/#", "telemetry/#"}})
	testutil.WaitFor(t, 10*time.Second, "both connected", func() bool { return ta.status().State == "connected" })

	for _, p := range [][2]string{{"telemetry/1", "t1"}, {"alarms/1", "a1"}} {
		if r := ta.publish(p[0], p[1]); r.status != 202 {
			t.Fatalf("%s: %d %s", p[0], r.status, r.raw)
		}
	}
	r := ta.publish("x/y", "no")
	if r.status != 400 || !strings.Contains(r.raw, `no broker takes topic \"x/y\": aws takes telemetry/#; plant takes alarms/#, telemetry/#`) {
		t.Fatalf("unrouted topic: %d %s", r.status, r.raw)
	}
	// ?broker=aws: alarms/2 goes to aws although aws does not take alarms/#; plant does not get it.
	ctx := context.Background()
	to, err := ta.a.Route("alarms/2", "aws")
	if err != nil || to != queue.Lane(0) {
		t.Fatalf("Route(alarms/2, aws) = %v, %v", to, err)
	}
	both, err := ta.a.Route("telemetry/2", "")
	if err != nil || both != queue.Lane(0)|queue.Lane(1) {
		t.Fatalf("Route(telemetry/2) = %v, %v", both, err)
	}
	ids, err := ta.a.Store(ctx, []queue.Message{{Topic: "alarms/2", Payload: []byte("a2"), QoS: 1}, {Topic: "telemetry/2", Payload: []byte("t2"), QoS: 1}},
		[]queue.Targets{to, both})
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := ta.a.WaitDelivered(wctx, ids[1], both); err != nil {
		t.Fatalf("wait for telemetry/2 at both brokers: %v", err)
	}
	// The same through the socket: ?broker=plant sends x/z to plant only; an unknown name is 400.
	if r := ta.do("POST", "/v1/publish?topic=x/z&broker=plant", "", []byte("xz")); r.status != 202 {
		t.Fatalf("?broker=plant: %d %s", r.status, r.raw)
	}
	if r := ta.do("POST", "/v1/publish?topic=x/z&broker=nope", "", []byte("xz")); r.status != 400 || !strings.Contains(r.raw, "brokers: aws, plant") {
		t.Fatalf("?broker=nope: %d %s", r.status, r.raw)
	}
	gotA, err := subA.WaitCount(3, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	gotP, err := subP.WaitCount(4, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if a, p := strings.Join(payloads(gotA), " "), strings.Join(payloads(gotP), " "); a != "telemetry/1=t1 alarms/2=a2 telemetry/2=t2" ||
		p != "telemetry/1=t1 alarms/1=a1 telemetry/2=t2 x/z=xz" {
		t.Fatalf("aws got %s\nplant got %s", a, p)
	}
	testutil.WaitFor(t, 10*time.Second, "all delivered", func() bool { st := ta.status(); return st.Delivered == 7 && st.Queue.Depth == 0 })
	st := ta.status()
	if len(st.Brokers) != 2 || st.Brokers[0].Name != "aws" || st.Brokers[1].Name != "plant" ||
		st.Brokers[0].Accepted != 3 || st.Brokers[1].Accepted != 4 || st.Accepted != 7 || // 5 messages, 2 of them for both brokers: 7 deliveries to make
		st.Brokers[0].Delivered != 3 || st.Brokers[1].Delivered != 4 || st.Queue.Depth != 0 {
		t.Fatalf("status: %+v", st)
	}
	// What needs one broker named says so when there are several.
	if _, err := ta.a.Requeue(ctx, "", 1); !errors.Is(err, localapi.ErrBadInput) || !strings.Contains(err.Error(), "name the broker (brokers: aws, plant)") {
		t.Fatalf("requeue without a broker: %v", err)
	}
	if _, err := ta.a.DeleteDeadLetters(ctx, "", 1); !errors.Is(err, localapi.ErrBadInput) {
		t.Fatalf("delete without a broker: %v", err)
	}
	if dls, err := ta.a.DeadLetters("", 0, 10); err != nil || len(dls) != 0 {
		t.Fatalf("dead letters: %v, %v", dls, err)
	}
	if _, err := ta.a.Identity(ctx, "plant"); !errors.Is(err, localapi.ErrNotFound) {
		t.Fatalf("identity of an mqtt broker: %v", err)
	}
}

// One broker down: the other keeps delivering everything, in order, while the down one's lane keeps
// its messages; when it is back, it gets all of them, in order. The status says "degraded" meanwhile.
func TestOneBrokerDownTheOtherDelivers(t *testing.T) {
	const n = 50
	ma, mp := mosquitto.Start(t), mosquitto.Start(t, mosquitto.WithPersistence())
	subA := mosquitto.Subscribe(t, ma.TCPAddr(), "telemetry/#")
	subP := mosquitto.Subscribe(t, mp.TCPAddr(), "telemetry/#", mosquitto.Persistent())
	ta := startBrokers(t, nil, brokerSpec{"aws", ma.WSURL(), nil}, brokerSpec{"plant", mp.WSURL(), nil})
	testutil.WaitFor(t, 10*time.Second, "both connected", func() bool { return ta.status().State == "connected" })

	mp.Stop()
	testutil.WaitFor(t, 10*time.Second, "plant seen down", func() bool { return ta.status().Brokers[1].State != "connected" })
	for i := 1; i <= n; i++ {
		if r := ta.publish("telemetry/"+strconv.Itoa(i), strconv.Itoa(i)); r.status != 202 {
			t.Fatalf("publish %d: %d %s", i, r.status, r.raw)
		}
	}
	gotA, err := subA.WaitCount(n, 20*time.Second)
	if err != nil {
		t.Fatalf("aws while plant is down: %v", err)
	}
	if _, err := mosquitto.CheckNumbered(gotA, n); err != nil {
		t.Fatalf("aws: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "aws's lane empty", func() bool { return ta.status().Brokers[0].Queue.Depth == 0 })
	st := ta.status()
	if st.State != StateDegraded || st.Brokers[0].State != "connected" || st.Brokers[1].Queue.Depth != n ||
		st.Queue.Depth != n || st.Brokers[0].Delivered != n || st.Brokers[1].Delivered != 0 {
		t.Fatalf("during the cut: state %s, brokers %+v", st.State, st.Brokers)
	}
	t.Logf("during the cut: state %s; aws %s depth %d delivered %d; plant %s depth %d", st.State,
		st.Brokers[0].State, st.Brokers[0].Queue.Depth, st.Brokers[0].Delivered, st.Brokers[1].State, st.Brokers[1].Queue.Depth)

	mp.Restart(t)
	gotP, err := subP.WaitDistinct(n, 30*time.Second)
	if err != nil {
		t.Fatalf("plant after its restart: %v", err)
	}
	if _, err := mosquitto.CheckNumbered(gotP, n); err != nil {
		t.Fatalf("plant: %v", err)
	}
	testutil.WaitFor(t, 10*time.Second, "everything delivered", func() bool {
		st := ta.status()
		return st.State == "connected" && st.Queue.Depth == 0 && st.Delivered == 2*n
	})
}

// A local stream subscribed with every broker gets the messages of both, each with its broker's
// name; [[subscribe]] entries go to the broker they name only.
func TestSubscriptionsFromBothBrokers(t *testing.T) {
	ma, mp := mosquitto.Start(t), mosquitto.Start(t)
	ta := startBrokers(t, []config.Subscribe{{Topic: "cfg/#", QoS: 1, Broker: "plant"}},
		brokerSpec{"aws", ma.WSURL(), nil}, brokerSpec{"plant", mp.WSURL(), nil})
	testutil.WaitFor(t, 10*time.Second, "both connected", func() bool { return ta.status().State == "connected" })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	all, err := ta.a.Subscribe(ctx, []string{"cmd/#"}, "")
	if err != nil {
		t.Fatal(err)
	}
	defer all.Close()
	plant, err := ta.a.Subscribe(ctx, []string{"cmd/#"}, "plant")
	if err != nil {
		t.Fatal(err)
	}
	defer plant.Close()
	if _, err := ta.a.Subscribe(ctx, []string{"cmd/#"}, "nope"); !errors.Is(err, localapi.ErrBadInput) {
		t.Fatalf("unknown broker: %v", err)
	}

	mosquitto.Publish(t, ma.TCPAddr(), "cmd/a", []byte("from aws"), 1, false)
	mosquitto.Publish(t, mp.TCPAddr(), "cmd/p", []byte("from plant"), 1, false)
	drain := func(s localapi.Subscription, want int) []string {
		var got []string
		for {
			_ = s.Drain(func(broker, topic string, payload []byte, _ byte, _ bool) error {
				got = append(got, broker+" "+topic+" "+string(payload))
				return nil
			})
			if len(got) >= want {
				return got
			}
			select {
			case <-s.Wake():
			case <-ctx.Done():
				t.Fatalf("got %v, want %d messages", got, want)
			}
		}
	}
	got := drain(all, 2)
	if strings.Join(sortedCopy(got), "|") != "aws cmd/a from aws|plant cmd/p from plant" {
		t.Fatalf("stream of every broker: %v", got)
	}
	if got := drain(plant, 1); len(got) != 1 || got[0] != "plant cmd/p from plant" {
		t.Fatalf("stream of plant: %v", got)
	}
	// [[subscribe]] cfg/# is plant's only: aws never sends cfg/x, plant does (each broker's cmd/
	// message after it arrives after it, on the same connection).
	mosquitto.Publish(t, ma.TCPAddr(), "cfg/x", []byte("aws cfg"), 1, false)
	mosquitto.Publish(t, ma.TCPAddr(), "cmd/b", []byte("aws b"), 1, false)
	mosquitto.Publish(t, mp.TCPAddr(), "cfg/x", []byte("plant cfg"), 1, false)
	mosquitto.Publish(t, mp.TCPAddr(), "cmd/q", []byte("plant q"), 1, false)
	got = drain(all, 2)
	if strings.Join(sortedCopy(got), "|") != "aws cmd/b aws b|plant cmd/q plant q" {
		t.Fatalf("after cfg/x at both: %v", got)
	}
	st := ta.status()
	if st.Brokers[0].Received != 2 || st.Brokers[1].Received != 3 || st.Received != 5 || st.Subscribers != 2 {
		t.Fatalf("received aws %d plant %d total %d, %d subscribers", st.Brokers[0].Received, st.Brokers[1].Received, st.Received, st.Subscribers)
	}
}

func sortedCopy(s []string) []string { return slices.Sorted(slices.Values(s)) }

// Dead letters of several brokers: "" lists every broker's, by id and then in config order (one
// message dead-lettered at both brokers is listed twice, once per broker); a name lists that one's
// and requeues and deletes there only.
func TestDeadLettersOfTwoBrokers(t *testing.T) {
	// Nothing listens at either URL: the messages stay queued until dead-lettered by hand.
	ta := startBrokers(t, nil, brokerSpec{"aws", "ws://127.0.0.1:1/mqtt", nil}, brokerSpec{"plant", "ws://127.0.0.1:1/mqtt", nil})
	ctx := context.Background()
	both := queue.Lane(0) | queue.Lane(1)
	ids, err := ta.a.Store(ctx, []queue.Message{{Topic: "t/1", QoS: 1}, {Topic: "t/2", QoS: 1}}, []queue.Targets{both, queue.Lane(1)})
	if err != nil {
		t.Fatal(err)
	}
	aws, plant := ta.a.links[0].q, ta.a.links[1].q
	plant.DeadLetter(ids[1], "refused")
	plant.DeadLetter(ids[0], "refused")
	aws.DeadLetter(ids[0], "refused")
	if err := ta.a.store.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	list := func(broker string, after uint64, n int) string {
		t.Helper()
		dls, err := ta.a.DeadLetters(broker, after, n)
		if err != nil {
			t.Fatal(err)
		}
		var s []string
		for _, d := range dls {
			s = append(s, fmt.Sprintf("%s:%s", d.Broker, d.Topic))
		}
		return strings.Join(s, " ")
	}
	if got := list("", 0, 10); got != "aws:t/1 plant:t/1 plant:t/2" {
		t.Fatalf("every broker's: %s", got)
	}
	if got := list("", 0, 2); got != "aws:t/1 plant:t/1" {
		t.Fatalf("first 2: %s", got)
	}
	if got := list("plant", ids[0], 10); got != "plant:t/2" {
		t.Fatalf("plant's after %d: %s", ids[0], got)
	}
	if _, err := ta.a.DeadLetters("nope", 0, 10); !errors.Is(err, localapi.ErrBadInput) {
		t.Fatalf("unknown broker: %v", err)
	}
	if n, err := ta.a.DeleteDeadLetters(ctx, "plant", ids[0]); err != nil || n != 1 {
		t.Fatalf("delete at plant: %d, %v", n, err)
	}
	if _, err := ta.a.Requeue(ctx, "aws", ids[0]); err != nil {
		t.Fatalf("requeue at aws: %v", err)
	}
	if got := list("", 0, 10); got != "plant:t/2" {
		t.Fatalf("after delete and requeue: %s", got)
	}
	st := ta.status()
	if st.State != "connecting" && st.State != "disconnected" || st.Brokers[0].Queue.Depth != 1 || st.Brokers[1].Queue.DeadLetters != 1 {
		t.Fatalf("status: %s, brokers %+v", st.State, st.Brokers)
	}
}

// Identity "" means the only aws-iot broker: with two it must be named; an aws-iot broker without an
// identity pool has no identity.
func TestIdentityOfSeveralAWSBrokers(t *testing.T) {
	url := "wss://a1-ats.iot.eu-west-1.amazonaws.com/mqtt"
	cfg := brokersConfig(t, t.TempDir(), testutil.SocketPath(t, "agent.sock"), nil,
		brokerSpec{"aws", url, nil}, brokerSpec{"aws2", url, nil}, brokerSpec{"plant", "ws://127.0.0.1:1/mqtt", nil})
	for i := range 2 {
		cfg.Brokers[i].Provider = config.ProviderAWSIoT
	}
	a, err := New(cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := a.Identity(ctx, ""); !errors.Is(err, localapi.ErrBadInput) || !strings.Contains(err.Error(), "aws-iot brokers: aws, aws2") {
		t.Fatalf("identity of two aws-iot brokers: %v", err)
	}
	for _, b := range []string{"aws", "plant"} {
		if _, err := a.Identity(ctx, b); !errors.Is(err, localapi.ErrNotFound) {
			t.Fatalf("identity of %s (no identity pool): %v", b, err)
		}
	}
}
