package controller

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/swarm-reconciler/reconciler/manifests"
	"github.com/swarm-reconciler/reconciler/spec"
)

// probeTimeout bounds one probe attempt, so a reconcile never hangs on an app.
const probeTimeout = 2 * time.Second

// prober runs the readiness probes of a spec after swarm convergence and remembers, per app,
// how many consecutive times each tcp probe connected (for `stable`).
type prober struct {
	mu     sync.Mutex
	stable map[string]int // app + "\x00" + probe key -> consecutive successes
}

// probeResult is one probe's outcome in words a person can act on.
type probeResult struct {
	Name string
	OK   bool
	Last string
}

// check runs every probe of s once; it returns the first that is not (yet) passing, or a
// passing result. The probes after a failing one are not asked, and their `stable` counts
// start again: the app did not answer in this check, so no run of successes spans it.
func (p *prober) check(ctx context.Context, app string, s *spec.Spec) probeResult {
	for i, pr := range s.Health {
		r := p.run(ctx, app, i, pr, s.Domain)
		if !r.OK {
			p.mu.Lock()
			for j := i + 1; j < len(s.Health); j++ {
				delete(p.stable, probeKey(app, j, s.Health[j], s.Domain))
			}
			p.mu.Unlock()
			return r
		}
	}
	return probeResult{OK: true}
}

// probeKey names probe i of app in prober.stable: a changed target is a new probe.
func probeKey(app string, i int, pr spec.Probe, domain string) string {
	return fmt.Sprintf("%s\x00%d\x00%s", app, i, probeTarget(pr, domain))
}

// probeTarget is the address or URL a probe asks, its {domain} filled in.
func probeTarget(pr spec.Probe, domain string) string {
	if pr.HTTP != "" {
		return strings.ReplaceAll(pr.HTTP, "{domain}", domain)
	}
	return strings.ReplaceAll(pr.TCP, "{domain}", domain)
}

func (p *prober) run(ctx context.Context, app string, i int, pr spec.Probe, domain string) probeResult {
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	var r probeResult
	target := probeTarget(pr, domain)
	switch {
	case pr.HTTP != "":
		r = httpProbe(ctx, i, pr, target)
	default:
		r = probeResult{Name: fmt.Sprintf("health[%d] tcp %s", i, target)}
		conn, err := (&net.Dialer{}).DialContext(ctx, "tcp", target)
		if err != nil {
			r.Last = err.Error()
		} else {
			conn.Close()
			r.OK, r.Last = true, "connected"
		}
	}
	// `stable` counts consecutive successes, of either kind of probe.
	need := max(pr.Stable, 1)
	key := probeKey(app, i, pr, domain)
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stable == nil {
		p.stable = map[string]int{}
	}
	if !r.OK {
		p.stable[key] = 0
		return r
	}
	p.stable[key]++
	if n := p.stable[key]; n < need {
		r.OK = false
		r.Last = fmt.Sprintf("%s %d/%d times in a row", r.Last, n, need)
	}
	return r
}

// httpProbe asks url once. Its user info (a token) is in neither the name nor the result.
func httpProbe(ctx context.Context, i int, pr spec.Probe, url string) probeResult {
	name := fmt.Sprintf("health[%d] http %s", i, manifests.RedactURL(url)) // it goes into statuses
	ok := pr.OK
	if len(ok) == 0 {
		ok = []int{200, 301, 302}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return probeResult{Name: name, Last: manifests.RedactUserInfo(err.Error())}
	}
	client := &http.Client{
		// TLS is not verified: test apps run with self-signed or staging certificates. No
		// connection is kept: the client is dropped after this one request.
		Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}, DisableKeepAlives: true}, //nolint:gosec
		// A redirect is an answer: 301/302 are judged as codes, not followed.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	if err != nil {
		return probeResult{Name: name, Last: manifests.RedactUserInfo(err.Error())}
	}
	resp.Body.Close()
	if !slices.Contains(ok, resp.StatusCode) {
		return probeResult{Name: name, Last: fmt.Sprintf("status %d, want one of %v", resp.StatusCode, ok)}
	}
	return probeResult{Name: name, OK: true, Last: fmt.Sprintf("status %d", resp.StatusCode)}
}

// forget drops an app's probe history.
func (p *prober) forget(app string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.stable {
		if strings.HasPrefix(k, app+"\x00") {
			delete(p.stable, k)
		}
	}
}
