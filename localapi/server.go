package localapi

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/edge-agent/edge-agent/config"
)

// Options configure a Server.
type Options struct {
	Socket string          // the path to listen on (config key socket)
	Access []config.Access // [[access]] rules: who beyond root and the agent's user and group may do what
	Limits Limits
	Logger *slog.Logger
}

// Server is the local API: HTTP/1.1 on a Unix socket, in front of a Backend. Create it with New,
// then Listen, Serve and Shutdown, once each, in that order.
type Server struct {
	b      Backend
	log    *slog.Logger
	lim    Limits
	socket string
	access *accessPolicy
	body   *budget      // api.body_budget (budget.go)
	conns  *connLimiter // api.max_connections (connlimit.go)
	errors atomic.Uint64
	// metricsRefused counts connections to metrics.listen closed at its limit (metrics.go).
	metricsRefused atomic.Uint64

	// groupsOf reads a process's supplementary groups; once per connection (connContext).
	groupsOf func(pid int32) []uint32

	streams    context.Context // ends subscriber streams at Shutdown
	endStreams context.CancelFunc
	srv        *http.Server
}

// New prepares a Server for b. It resolves the access rules' user and group names, so that a bad
// name fails here, before anything listens.
func New(b Backend, opts Options) (*Server, error) {
	acc, err := newAccessPolicy(opts.Access)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{b: b, log: log, lim: opts.Limits, socket: opts.Socket, access: acc,
		body: newBudget(opts.Limits.BodyBudget), conns: newConnLimiter(opts.Limits.MaxConnections),
		groupsOf: procGroups}
	s.streams, s.endStreams = context.WithCancel(context.Background())
	s.srv = s.httpServer()
	return s, nil
}

// Listen creates the socket (mode 0660 without [[access]] rules, 0666 with them).
func (s *Server) Listen() (net.Listener, error) {
	ln, err := listenSocket(s.socket, s.access.socketMode())
	if err != nil {
		return nil, err
	}
	return s.conns.wrap(ln), nil
}

// Serve answers requests on ln (from Listen) until Shutdown; after Shutdown it returns nil.
func (s *Server) Serve(ln net.Listener) error {
	err := s.srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, ends subscriber streams and waits for requests in progress until ctx
// ends, then closes what is left; it removes the socket.
func (s *Server) Shutdown(ctx context.Context) error {
	s.endStreams()
	err := s.srv.Shutdown(ctx)
	if err != nil {
		s.srv.Close()
	}
	os.Remove(s.socket)
	return err
}

// ExemptSelf sets whether this process's own connections (the health check) pass the connection
// limit; on by default. Tests, whose clients share the agent's process, turn it off.
func (s *Server) ExemptSelf(on bool) { s.conns.exemptSelf.Store(on) }

// perm is what a route requires of its caller.
type perm int

const (
	permAny       perm = iota // whoever can open the socket
	permPublish               // checked against each message's topic by the handler
	permSubscribe             // checked against each filter by the handler
	permTrusted               // root, the agent's own user and members of its group
)

// route is one endpoint of the API; pattern is a Go 1.22 ServeMux pattern with its method.
type route struct {
	pattern string
	perm    perm
	what    string // for a refused permTrusted caller: "may manage dead letters"
	h       http.HandlerFunc
}

func (s *Server) routes() []route {
	return []route{
		{"POST /v1/publish", permPublish, "", s.publish},
		{"GET /v1/subscribe", permSubscribe, "", s.subscribe},
		{"GET /v1/status", permAny, "", s.status},
		{"GET /metrics", permAny, "", s.metrics},
		// GET /v1/identity may create the device's Cognito identity (GetId): an operator's act.
		{"GET /v1/identity", permTrusted, "may create or read the Cognito identity", s.identity},
		{"GET /v1/deadletters", permTrusted, "may manage dead letters", s.listDeadLetters},
		{"DELETE /v1/deadletters", permTrusted, "may manage dead letters", s.deleteDeadLetters},
		{"POST /v1/deadletters/requeue", permTrusted, "may manage dead letters", s.requeue},
	}
}

// handler builds the route table into a ServeMux. A path asked with another method gets 405 with
// Allow; an unknown path 404.
func (s *Server) handler() http.Handler {
	mux := http.NewServeMux()
	methods := map[string][]string{} // path → methods, in table order
	var paths []string
	for _, rt := range s.routes() {
		mux.HandleFunc(rt.pattern, s.guard(rt))
		method, path, _ := strings.Cut(rt.pattern, " ")
		if methods[path] == nil {
			paths = append(paths, path)
		}
		methods[path] = append(methods[path], method)
	}
	for _, path := range paths {
		allow := methods[path]
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Allow", strings.Join(allow, ", "))
			s.fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, strings.Join(allow, " or ")))
		})
	}
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		s.fail(w, http.StatusNotFound, fmt.Sprintf("no such endpoint %s; see /v1/publish, /v1/subscribe, /v1/status, /metrics", r.URL.Path))
	})
	return s.checkQuery(mux)
}

// guard answers r itself when its method is HEAD (GET patterns match it; the API has no HEAD) or
// the caller lacks rt's permission; else it runs rt's handler.
func (s *Server) guard(rt route) http.HandlerFunc {
	method, _, _ := strings.Cut(rt.pattern, " ")
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != method {
			w.Header().Set("Allow", method)
			s.fail(w, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s: use %s", r.Method, r.URL.Path, method))
			return
		}
		if rt.perm == permTrusted && !s.access.trusted(peerFrom(r.Context())) {
			s.fail(w, http.StatusForbidden, "only root, the agent's user and its group "+rt.what)
			return
		}
		rt.h(w, r)
	}
}

func (s *Server) httpServer() *http.Server {
	rt := s.lim.ReadTimeout
	return &http.Server{
		Handler: s.handler(),
		// The caller's credentials are read once per connection (connContext).
		ConnContext: s.connContext,
		// ReadTimeout bounds reading a request, headers and body, so a stalled upload cannot hold
		// its connection and its budget. It does not cut a subscriber stream: net/http clears the
		// read deadline once a request's body is read (to notice a client that goes away), and a
		// stream's GET has none. No WriteTimeout, for the same streams; a reader that stops
		// reading only fills its own bounded buffer (the agent's hub).
		ReadTimeout:       rt,
		ReadHeaderTimeout: min(rt, 10*time.Second),
		IdleTimeout:       s.lim.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
	}
}

// checkQuery refuses a query string that Go's url.Query would read only in part: a ';' (once a
// separator, now a pair that is silently dropped) or a malformed escape.
func (s *Server) checkQuery(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.Contains(r.URL.RawQuery, ";") {
			s.fail(w, http.StatusBadRequest, "';' is not a query separator; use '&' (write a ';' inside a value as %3B)")
			return
		}
		if _, err := url.ParseQuery(r.URL.RawQuery); err != nil {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("bad query string: %v", err))
			return
		}
		next.ServeHTTP(w, r)
	})
}

// onlyParams answers 400 and returns false when r's query has a parameter not in allowed.
func (s *Server) onlyParams(w http.ResponseWriter, r *http.Request, allowed ...string) bool {
	for k := range r.URL.Query() {
		if !slices.Contains(allowed, k) {
			s.fail(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q", k))
			return false
		}
	}
	return true
}

// brokerParam reads ?broker=NAME, given at most once; "" when absent.
func brokerParam(r *http.Request) (string, error) {
	bs := r.URL.Query()["broker"]
	if len(bs) > 1 {
		return "", badRequest("query parameter \"broker\" given %d times: name one broker, or leave it out", len(bs))
	}
	if len(bs) == 0 {
		return "", nil
	}
	return bs[0], nil
}

// Connections is how many local API connections are open now.
func (s *Server) Connections() int { return int(s.conns.active.Load()) }
