package spec

import (
	"errors"
	"maps"
	"slices"
)

// The caches hand out copies made here, so a caller that changes a returned Spec, Status or
// error (the controller edits statuses in place) cannot change what the next caller gets.
// Every reference-typed field must be copied: TestCloneSharesNothing fills every field by
// reflection and fails when a new field is added here without being copied. nil stays nil and
// empty stays empty, because callers and tests compare with reflect.DeepEqual.

func (s *Spec) clone() *Spec {
	if s == nil {
		return nil
	}
	c := *s
	c.Env = maps.Clone(s.Env)
	c.MinReady = clonePtr(s.MinReady)
	c.Overlays = slices.Clone(s.Overlays)
	if s.Health != nil {
		c.Health = make([]Probe, len(s.Health))
		for i, p := range s.Health {
			p.OK = slices.Clone(p.OK)
			c.Health[i] = p
		}
	}
	if s.Backup != nil {
		b := *s.Backup
		b.Checks.BeforeBackup = slices.Clone(b.Checks.BeforeBackup)
		b.Checks.BeforeRestore = slices.Clone(b.Checks.BeforeRestore)
		b.Checks.AfterRestore = slices.Clone(b.Checks.AfterRestore)
		b.Restore = clonePtr(b.Restore)
		c.Backup = &b
	}
	return &c
}

// clone copies a backup run, sharing nothing.
func (r *BackupRun) clone() *BackupRun {
	if r == nil {
		return nil
	}
	c := *r
	c.Finished = clonePtr(r.Finished)
	c.PostHooksOwed = slices.Clone(r.PostHooksOwed)
	if r.Volumes != nil {
		c.Volumes = make([]VolumeRun, len(r.Volumes))
		for i, v := range r.Volumes {
			v.Paths = slices.Clone(v.Paths)
			c.Volumes[i] = v
		}
	}
	if r.Hooks != nil {
		c.Hooks = make([]HookRun, len(r.Hooks))
		for i, h := range r.Hooks {
			h.Output = slices.Clone(h.Output)
			c.Hooks[i] = h
		}
	}
	return &c
}

func (s *Status) clone() *Status {
	if s == nil {
		return nil
	}
	c := *s
	c.Conditions = slices.Clone(s.Conditions) // Condition holds values only
	c.FirstDeployedAt = clonePtr(s.FirstDeployedAt)
	c.AttemptStartedAt = clonePtr(s.AttemptStartedAt)
	c.SetBackAt = clonePtr(s.SetBackAt)
	if s.Services != nil {
		c.Services = make([]ServiceStatus, len(s.Services))
		for i, svc := range s.Services {
			if svc.Tasks != nil {
				tasks := make([]TaskStatus, len(svc.Tasks))
				for j, t := range svc.Tasks {
					t.ExitCode = clonePtr(t.ExitCode)
					t.Logs = slices.Clone(t.Logs)
					tasks[j] = t
				}
				svc.Tasks = tasks
			}
			c.Services[i] = svc
		}
	}
	c.Removed = slices.Clone(s.Removed)
	c.Overlays = slices.Clone(s.Overlays)
	if s.Nodes != nil {
		c.Nodes = make([]NodeVolumes, len(s.Nodes))
		for i, n := range s.Nodes {
			n.Volumes = slices.Clone(n.Volumes)
			n.Jobs = slices.Clone(n.Jobs)
			c.Nodes[i] = n
		}
	}
	c.NodesNotAsked = slices.Clone(s.NodesNotAsked)
	c.JobContainers = slices.Clone(s.JobContainers)
	c.LastBackup = s.LastBackup.clone()
	c.LastRestore = s.LastRestore.clone()
	c.Requests = slices.Clone(s.Requests) // RequestOutcome holds values only
	c.History = slices.Clone(s.History)   // HistoryEntry holds values only
	return &c
}

func clonePtr[T any](p *T) *T {
	if p == nil {
		return nil
	}
	v := *p
	return &v
}

// cloneErr copies the errors Parse returns: a *FieldError, or errors.Join of them. Any other
// shape is returned as it is (Parse makes none), and so is a join whose copy would read
// differently, so a copy never changes what a person is told.
func cloneErr(err error) error {
	switch e := err.(type) {
	case nil:
		return nil
	case *FieldError:
		c := *e
		return &c
	case interface{ Unwrap() []error }:
		parts := e.Unwrap()
		copies := make([]error, len(parts))
		for i, p := range parts {
			copies[i] = cloneErr(p)
		}
		if c := errors.Join(copies...); c != nil && c.Error() == err.Error() {
			return c
		}
	}
	return err
}
