package awsiot

import (
	"net/http"
	"time"
)

const (
	skewNoise     = 2 * time.Second  // Date has 1 s resolution: below this there is no measurable skew
	skewLogAbove  = 30 * time.Second // log the skew once it exceeds this
	skewLogChange = time.Minute      // and again only when it moves by more than this
	// MaxSigV4Skew is the clock difference AWS tolerates in a SigV4 signature.
	MaxSigV4Skew = 5 * time.Minute
)

// skewState is guarded by Provider.mu.
type skewState struct {
	offset    time.Duration // AWS time minus local time
	logged    bool
	loggedVal time.Duration
}

// ObserveResponse learns the clock skew from the Date header of any AWS
// response, e.g. a 403 answer to the WebSocket upgrade. Responses without a
// valid Date header are ignored. Safe to call with nil.
func (p *Provider) ObserveResponse(resp *http.Response) {
	if resp == nil {
		return
	}
	d := resp.Header.Get("Date")
	if d == "" {
		return
	}
	server, err := http.ParseTime(d)
	if err != nil {
		return
	}
	p.observeServerTime(server)
}

func (p *Provider) observeServerTime(server time.Time) {
	off := server.Sub(p.now())
	if off.Abs() < skewNoise {
		off = 0
	} else {
		off = off.Round(time.Second)
	}
	p.mu.Lock()
	prev := p.skew.offset
	p.skew.offset = off
	logIt, cleared := false, false
	switch {
	case off.Abs() > skewLogAbove && (!p.skew.logged || (off-p.skew.loggedVal).Abs() > skewLogChange):
		p.skew.logged, p.skew.loggedVal, logIt = true, off, true
	case off.Abs() <= skewLogAbove && p.skew.logged:
		p.skew.logged, cleared = false, true
	}
	p.mu.Unlock()

	switch {
	case logIt:
		p.log.Warn("device clock differs from AWS; signing with AWS time (check NTP / the real-time clock)",
			"skew", off.String(), "aws_time", server.UTC().Format(time.RFC3339), "local_time", p.now().UTC().Format(time.RFC3339))
	case cleared:
		p.log.Info("device clock now agrees with AWS", "skew", off.String(), "previous_skew", prev.String())
	}
}
