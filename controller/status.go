package controller

import (
	"encoding/json"
	"reflect"
	"time"

	"github.com/swarm-reconciler/reconciler/spec"
	"github.com/swarm-reconciler/reconciler/swarmstate"
)

// maxHistory bounds the history kept in a status file.
const maxHistory = 20

// setPhase moves st to phase with a message a person can act on, recording the change (or a
// milestone within a phase) in the history and keeping the Ready, Reconciling and Stalled
// conditions consistent with it. decision.status is its one caller.
func setPhase(st *spec.Status, phase spec.Phase, message string, milestone bool, now time.Time) {
	if st.Phase != phase || milestone && st.Message != message {
		st.History = append(st.History, spec.HistoryEntry{Time: now, Phase: phase, Message: message})
		if len(st.History) > maxHistory {
			st.History = st.History[len(st.History)-maxHistory:]
		}
	}
	st.Phase = phase
	st.Message = message

	ready, reconciling, stalled := "False", "False", "False"
	reason := string(phase)
	switch phase {
	case spec.PhaseReady:
		ready, reason = "True", "Converged"
	case spec.PhasePending, spec.PhaseDeploying, spec.PhaseUpgrading, spec.PhaseDeleting:
		reconciling = "True"
	case spec.PhaseFailed, spec.PhaseInvalid:
		stalled = "True"
	}
	msg := func(status string) string {
		if status == "True" || phase != spec.PhaseReady {
			return message
		}
		return ""
	}
	st.SetCondition("Ready", ready, reason, msg(ready), now)
	if reconciling == "True" {
		st.SetCondition("Reconciling", reconciling, reason, message, now)
	} else {
		st.SetCondition("Reconciling", reconciling, "", "", now)
	}
	if stalled == "True" {
		st.SetCondition("Stalled", stalled, reason, message, now)
	} else {
		st.SetCondition("Stalled", stalled, "", "", now)
	}
}

// observeServices copies the verdict's per-service state into the status, with the log lines
// of failed tasks: those read this pass (logs), or kept from the status before, and the node
// of each task placed elsewhere than on the reconciler's node.
func observeServices(st *spec.Status, v swarmstate.Verdict, logs map[string][]string, nodes swarmstate.Nodes) {
	kept := map[string][]string{}
	for _, s := range st.Services {
		for _, t := range s.Tasks {
			if t.ID != "" && len(t.Logs) > 0 {
				kept[t.ID] = t.Logs
			}
		}
	}
	st.Services = st.Services[:0]
	for _, s := range v.Services {
		ss := spec.ServiceStatus{Name: s.Name, Image: s.Image, Running: s.Running, Desired: s.Desired, UpdateState: s.UpdateState}
		for _, t := range s.Tasks {
			ts := spec.TaskStatus{ID: t.ID, State: string(t.Status.State), Error: t.Status.Err, Since: t.Status.Timestamp,
				Node: nodes.Name(t)}
			if l, ok := logs[t.ID]; ok {
				ts.Logs = l
			} else if swarmstate.Failed(t) {
				ts.Logs = kept[t.ID]
			}
			if cs := t.Status.ContainerStatus; cs != nil && t.Status.State != "running" {
				code := cs.ExitCode
				ts.ExitCode = &code
			}
			ss.Tasks = append(ss.Tasks, ts)
		}
		st.Services = append(st.Services, ss)
	}
}

// changed reports whether a status differs from the one last written, ignoring UpdatedAt,
// so an unchanged world causes no write.
func changed(prev, next *spec.Status) bool {
	if prev == nil {
		return true
	}
	a, b := *prev, *next
	a.UpdatedAt, b.UpdatedAt = time.Time{}, time.Time{}
	return !reflect.DeepEqual(normalise(a), normalise(b))
}

// normalise round-trips through JSON so nil and empty slices, and time zones, compare equal.
func normalise(s spec.Status) map[string]any {
	raw, _ := json.Marshal(s)
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

func cloneStatus(s *spec.Status) *spec.Status {
	raw, _ := json.Marshal(s)
	var c spec.Status
	_ = json.Unmarshal(raw, &c)
	return &c
}
