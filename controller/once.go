package controller

import (
	"context"
	"sync"
	"time"
)

// RunOnce is one full pass: every app that needs work is reconciled until it settles (Ready,
// a final phase, or torn down), each app waiting on swarm as long as its spec's timeout allows.
// It returns the apps it looked at; the caller reads their status files for the verdict.
func (c *Controller) RunOnce(ctx context.Context) ([]string, error) {
	if c.Workers <= 0 {
		c.Workers = 4
	}
	apps, err := c.R.Pending(ctx)
	if err != nil {
		return nil, err
	}
	sem := make(chan struct{}, c.Workers)
	var wg sync.WaitGroup
	for _, app := range apps {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			c.settle(ctx, app)
		}()
	}
	wg.Wait()
	return apps, ctx.Err()
}

func (c *Controller) settle(ctx context.Context, app string) {
	backoff := 200 * time.Millisecond
	for ctx.Err() == nil {
		res, err := c.reconcile(ctx, app)
		wait := res.RequeueAfter
		switch {
		case err != nil:
			c.Log.Error(err, "reconcile failed; retrying with backoff", "app", app)
			wait, backoff = backoff, min(backoff*2, 30*time.Second)
		case wait <= 0:
			return
		}
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
}
