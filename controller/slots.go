package controller

import (
	"cmp"
	"slices"
	"sync"

	"github.com/swarm-reconciler/reconciler/spec"
)

// Deploy slots bound how many apps start at once (--max-deploying). Swarm starts tasks at a
// rate of its own (on two cores, a container every two seconds or so when a hundred stacks
// arrive at once), and shares it among every stack it was given: with a hundred apps deployed
// together, each one's tasks run near the end of the whole, and the median app waits almost
// as long as the last. With a bounded set starting at a time, apps run in the order their
// specs came, the first ones within seconds, and the last no later (measured in
// docs/benchmarks.md): what Flux's --concurrent and a CI runner's job slots do.
//
// An app holds a slot from the pass that applies its attempt (a new generation: an install or
// an upgrade) until the attempt ends, Ready or Failed. Releasing it once the tasks run, before
// their stability window, was measured too: at N = 100 the time from a task running to its
// Ready was 1.2 s (0.2 s held to the end), the windows overlapping the next apps' starts
// (docs/benchmarks.md). A converged app being repaired takes none (a repair is not to wait
// behind installs), and neither does a teardown. An app that finds no slot stays Pending,
// queued, its timeout not yet counting; the queue is first come, first served.
//
// Removal slots do the same for teardowns (--max-removing): swarm stops the tasks of removed
// services at its own pace too, and shares it the same way (a hundred stacks removed at once
// were each gone 50 s later, near the end of the whole). A teardown holds one from the pass
// that removes its services until their tasks have stopped; the rest of the teardown goes on
// meanwhile as without slots (its node jobs start with that pass, its networks, configs and
// secrets go on the next, its volumes once the containers that hold them have), and a task on
// a node that is down, or that left the swarm, does not hold it (it reports no end until the
// node is back, or never). A teardown that finds no slot stays
// Deleting, queued, touching nothing. The two queues are apart: a teardown never waits behind
// an install, nor an install behind a teardown.
type slotQueue struct {
	mu     sync.Mutex
	held   map[string]bool
	queued map[string]uint64 // app -> its ticket: the order it came in
	gen    map[string]string // app -> the generation of the spec it was queued with
	next   uint64
	// woken are queued apps a freed slot enqueued, until their pass: not woken again meanwhile.
	woken map[string]bool
}

// holdsSlot says the app holds a deploy slot after this pass: it began its attempt now, or an
// earlier pass did and the attempt goes on (an attempt found going on after a restart holds
// one too, over the limit if need be: it is not stopped half-way).
//
// Not d.Starts alone: a pass that began its attempt and ended it at once (an image that cannot
// be pulled, a name held by another owner: Failed) holds nothing.
func (d decision) holdsSlot() bool {
	return !d.Queued && (d.Phase == spec.PhaseDeploying || d.Phase == spec.PhaseUpgrading)
}

// holdsRemoval says the app holds a removal slot after this pass: its teardown removed its
// services, now or earlier, and their tasks still run (found so after a restart too).
func (d decision) holdsRemoval() bool {
	return !d.RemoveQueued && d.Phase == spec.PhaseDeleting && d.Stopping
}

// slotView is what a pass of one app knows of the slots.
type slotView struct {
	// Limit is --max-deploying or --max-removing; 0: no limit.
	Limit int
	// Held says the app holds a slot since an earlier pass.
	Held bool
	// Others is how many other apps hold one.
	Others int
	// Ahead is how many apps queued before this one (all queued apps, if it is not queued).
	Ahead int
	// Wakes says a freed slot enqueues the apps it lets in: a queued app need not look often.
	Wakes bool
}

// open says whether an attempt not yet begun may begin now.
func (v slotView) open() bool {
	return v.Limit <= 0 || v.Held || v.Others+v.Ahead < v.Limit
}

func (s *slotQueue) view(app string, limit int, wakes bool) slotView {
	v := slotView{Limit: limit, Wakes: wakes}
	if limit <= 0 {
		return v
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.viewLocked(app, v)
}

func (s *slotQueue) viewLocked(app string, v slotView) slotView {
	v.Held = s.held[app]
	v.Others = len(s.held)
	if v.Held {
		v.Others--
	}
	mine, queued := s.queued[app]
	for other, t := range s.queued {
		if other != app && (!queued || t < mine) {
			v.Ahead++
		}
	}
	return v
}

// take gives app a slot if its view is still open: passes of other apps may have taken the
// last one since this pass viewed them (the workers decide at once). A pass that decided to
// start an attempt takes its slot before it acts; one refused decides again.
func (s *slotQueue) take(app string, limit int) bool {
	if limit <= 0 {
		return true
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.viewLocked(app, slotView{Limit: limit}).open() {
		return false
	}
	s.initLocked()
	s.held[app] = true
	delete(s.queued, app)
	delete(s.gen, app)
	return true
}

func (s *slotQueue) initLocked() {
	if s.held == nil {
		s.held, s.queued, s.gen, s.woken = map[string]bool{}, map[string]uint64{}, map[string]string{}, map[string]bool{}
	}
}

// idle says app is queued, with no slot free for it and none woken it: a pass would find it
// queued again. It returns the generation of the spec it was queued with: a pass of the same
// spec need not read the swarm on a swarm of one node (a hundred queued apps, each looking
// every resync, kept the workers from the apps that deploy: the Ready of those came seconds
// late; Reconciler.oneNode says why not on several).
func (s *slotQueue) idle(app string, limit int) (gen string, ok bool) {
	if limit <= 0 {
		return "", false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, queued := s.queued[app]; !queued || s.woken[app] || s.viewLocked(app, slotView{Limit: limit}).open() {
		return "", false
	}
	return s.gen[app], true
}

// record keeps what a pass decided: the app holds a slot, waits for one (with the spec's
// generation gen), or neither. It returns the queued apps that slots now free may let in, first
// come first.
func (s *slotQueue) record(app string, limit int, hold, queued bool, gen string) (wake []string) {
	if limit <= 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.initLocked()
	delete(s.woken, app)
	freed := s.held[app] && !hold
	switch {
	case hold:
		s.held[app] = true
		delete(s.queued, app)
		delete(s.gen, app)
	case queued:
		if _, ok := s.queued[app]; !ok {
			s.next++
			s.queued[app] = s.next
		}
		s.gen[app] = gen
	default:
		delete(s.held, app)
		_, wasQueued := s.queued[app]
		delete(s.queued, app)
		delete(s.gen, app)
		freed = freed || wasQueued // the apps behind it moved up
	}
	free := limit - len(s.held) - len(s.woken)
	if !freed || free <= 0 || len(s.queued) == 0 {
		return nil
	}
	type ticket struct {
		app string
		n   uint64
	}
	var order []ticket
	for a, n := range s.queued {
		order = append(order, ticket{a, n})
	}
	slices.SortFunc(order, func(a, b ticket) int { return cmp.Compare(a.n, b.n) })
	for _, t := range order {
		if len(wake) == free {
			break
		}
		if !s.woken[t.app] {
			s.woken[t.app] = true
			wake = append(wake, t.app)
		}
	}
	return wake
}

// drop takes app out of the queue after a pass that ended before record (an error): an app
// whose passes keep failing must not hold the head of the queue. Its next pass that is queued
// again comes in last. A held slot is kept: the attempt goes on. It returns the apps to wake.
func (s *slotQueue) drop(app string, limit int) []string {
	if limit <= 0 {
		return nil
	}
	s.mu.Lock()
	held := s.held[app]
	_, queued := s.queued[app]
	s.mu.Unlock()
	if held || !queued {
		return nil
	}
	return s.record(app, limit, false, false, "")
}
