package awsiot

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/edge-agent/edge-agent/sigv4"
)

// Refresh timing.
const (
	refreshAhead     = 5 * time.Minute  // refresh this long before expiry (at most half the lifetime)
	minValidLeft     = 10 * time.Second // cached credentials closer to expiry than this are not served (at most a tenth of the lifetime)
	missingExpiry    = 15 * time.Minute // assumed lifetime when Cognito sends no expiration
	retryBase        = 1 * time.Second
	retryCap         = 2 * time.Minute
	refreshAttemptTO = 45 * time.Second // one refresh (identity + credentials, retries included)
)

// cachedCreds are Cognito credentials with their schedule. All times are AWS
// time (local clock + skew).
type cachedCreds struct {
	creds     sigv4.Credentials
	expires   time.Time
	refreshAt time.Time // due for refresh from here on
	validTill time.Time // not served from here on
}

func newCachedCreds(c sigv4.Credentials, issued, expires time.Time) *cachedCreds {
	life := expires.Sub(issued)
	if life < 0 {
		life = 0
	}
	ahead := min(refreshAhead, life/2)
	jitter := time.Duration(0)
	if ahead > 1 {
		jitter = rand.N(ahead / 2) // spread fleets so they do not refresh in lockstep
	}
	return &cachedCreds{
		creds:     c,
		expires:   expires,
		refreshAt: expires.Add(-ahead - jitter),
		validTill: expires.Add(-min(minValidLeft, life/10)),
	}
}

// backoff is exponential with "equal jitter": half fixed, half random, so a
// retry never follows immediately and a fleet still spreads out.
func backoff(failures int) time.Duration {
	d := retryCap
	if failures < 20 {
		d = min(retryCap, retryBase<<max(failures-1, 0))
	}
	return d/2 + rand.N(d/2+1)
}

// credentials returns credentials to sign with: long-term ones without a
// pool; otherwise cached Cognito credentials, refreshed when due. While a
// refresh fails, cached credentials that are still valid keep being served.
func (p *Provider) credentials(ctx context.Context) (sigv4.Credentials, error) {
	if p.cognito == nil {
		return p.staticCredentials()
	}
	now := p.correctedNow()
	p.mu.Lock()
	c, retryAt := p.creds, p.retryAt
	p.mu.Unlock()
	if c != nil && now.Before(c.refreshAt) {
		return c.creds, nil
	}
	if c != nil && now.Before(c.validTill) && now.Before(retryAt) {
		return c.creds, nil // due, but backing off after a failure: use what we have
	}
	err := p.refresh(ctx)
	p.mu.Lock()
	c = p.creds
	p.mu.Unlock()
	if err == nil && c != nil {
		return c.creds, nil
	}
	if c != nil && p.correctedNow().Before(c.validTill) {
		p.log.Warn("refreshing AWS credentials failed; using the cached ones until they expire",
			"expires", c.expires, "err", err)
		return c.creds, nil
	}
	if err == nil {
		err = errors.New("no credentials")
	}
	return sigv4.Credentials{}, fmt.Errorf("awsiot: no valid AWS credentials for AWS IoT: %w", err)
}

// refresh fetches new Cognito credentials unless another caller did so while
// this one waited. It records success or failure for Status and the backoff.
func (p *Provider) refresh(ctx context.Context) error {
	select {
	case p.credSem <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("awsiot: waiting for a credentials refresh: %w", ctx.Err())
	}
	defer func() { <-p.credSem }()

	p.mu.Lock()
	c := p.creds
	p.mu.Unlock()
	if c != nil && p.correctedNow().Before(c.refreshAt) {
		return nil // refreshed by someone else meanwhile
	}

	ctx, cancel := context.WithTimeout(ctx, refreshAttemptTO)
	defer cancel()
	err := p.fetch(ctx)
	if err != nil && errors.Is(err, context.Canceled) {
		return err // shutdown, not a failure of AWS
	}

	p.mu.Lock()
	if err != nil {
		p.failures++
		p.retryAt = p.now().Add(p.skew.offset).Add(backoff(p.failures))
		p.lastErr = err.Error()
	} else {
		p.failures = 0
		p.retryAt = time.Time{}
		p.lastErr = ""
	}
	failures, retryAt := p.failures, p.retryAt
	p.mu.Unlock()
	p.signalWake()

	if errors.Is(err, ErrIdentityNotFound) {
		p.log.Error("COGNITO IDENTITY NOT FOUND: the identity this device has used (and that its IoT permissions are granted to) no longer exists; "+
			"edge-agent will not create a new one on its own", "err", err, "attempt", failures, "next_try", retryAt)
	}
	return err
}

// fetch resolves the identity and gets and caches new credentials.
func (p *Provider) fetch(ctx context.Context) error {
	id, err := p.IdentityID(ctx)
	if err != nil {
		return err
	}
	out, err := p.getCredentials(ctx, id)
	if err != nil {
		return err
	}
	issued := p.correctedNow()
	expires := issued.Add(missingExpiry)
	if !out.Expiration.IsZero() {
		expires = out.Expiration
	} else {
		p.log.Warn("Cognito sent credentials without an expiration; assuming they last 15 minutes", "identity_id", id)
	}
	if !expires.After(issued) {
		return fmt.Errorf("awsiot: Cognito credentials for identity %s expire at %s, which is not after AWS time now (%s): is the clock skew learnt wrongly?",
			id, expires.UTC().Format(time.RFC3339), issued.UTC().Format(time.RFC3339))
	}
	sc := sigv4.Credentials{AccessKeyID: out.AccessKeyID, SecretAccessKey: out.SecretKey, SessionToken: out.SessionToken}
	p.learnCredentials(sc)
	c := newCachedCreds(sc, issued, expires)
	p.mu.Lock()
	p.creds = c
	p.mu.Unlock()
	p.log.Info("got AWS credentials from Cognito", "identity_id", id, "access_key_id", out.AccessKeyID,
		"expires", expires.UTC().Format(time.RFC3339), "refresh_at", c.refreshAt.UTC().Format(time.RFC3339))
	return nil
}

// Run keeps Cognito credentials fresh: it fetches them at once, then again
// ahead of expiry; after a failure it retries with exponential backoff and
// jitter. It blocks until ctx is done and then returns nil. Without an
// identity pool there is nothing to refresh and it just waits. Calling Run
// twice at the same time is an error.
func (p *Provider) Run(ctx context.Context) error {
	select {
	case p.running <- struct{}{}:
	default:
		return errors.New("awsiot: Provider.Run is already running")
	}
	defer func() { <-p.running }()

	if p.cognito == nil {
		<-ctx.Done()
		return nil
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-p.wake:
			timer.Reset(p.untilNextRefresh())
			continue
		case <-timer.C:
		}
		if p.untilNextRefresh() > 0 {
			timer.Reset(p.untilNextRefresh()) // refreshed lazily by Endpoint meanwhile
			continue
		}
		if err := p.refresh(ctx); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			p.log.Warn("refreshing AWS credentials from Cognito failed; retrying with backoff", "err", err,
				"retry_in", p.untilNextRefresh().Round(time.Millisecond))
		}
		timer.Reset(p.untilNextRefresh())
	}
}

// untilNextRefresh is how long Run waits before its next refresh attempt.
func (p *Provider) untilNextRefresh() time.Duration {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now().Add(p.skew.offset)
	var at time.Time
	if p.creds != nil {
		at = p.creds.refreshAt
	}
	if p.retryAt.After(at) {
		at = p.retryAt
	}
	return max(at.Sub(now), 0)
}
