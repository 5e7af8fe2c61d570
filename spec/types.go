// Package spec owns the desired-state file (parse, validate, defaults, generation hash),
// the status file (its type and atomic write), and scanning a directory into the desired set.
// It never talks to Docker.
package spec

import (
	"slices"
	"time"
)

// Tier says how an app is brought up.
type Tier string

const (
	// TierInstall deploys recipe@version fresh.
	TierInstall Tier = "install"
	// TierUpgrade deploys recipe@upgradeFrom, then upgrades in place to recipe@version.
	TierUpgrade Tier = "upgrade"
	// TierBackup deploys recipe@version, backs it up on its recipe's backup labels, restores
	// that backup, verifies it, and only then reports Ready.
	TierBackup Tier = "backup"
)

// Spec is the content of <specs>/<app>.yml. Field names are the file's contract.
type Spec struct {
	Recipe  string `yaml:"recipe" json:"recipe"`
	Version string `yaml:"version" json:"version"`
	// Source, when set, is the git URL this app's recipe comes from (a fork, a pull request's
	// repository) instead of --recipes and --recipe-url; kept apart from the catalogue's
	// repository of the same name.
	Source string `yaml:"source,omitempty" json:"source,omitempty"`
	// Ref, with Source, is a branch or a ref such as refs/pull/123/head, resolved to a commit
	// when the spec is first reconciled; the app deploys that commit (a chaos deploy).
	Ref         string            `yaml:"ref,omitempty" json:"ref,omitempty"`
	Tier        Tier              `yaml:"tier,omitempty" json:"tier,omitempty"`
	UpgradeFrom string            `yaml:"upgradeFrom,omitempty" json:"upgradeFrom,omitempty"`
	Domain      string            `yaml:"domain,omitempty" json:"domain,omitempty"`
	Env         map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	Timeout     Duration          `yaml:"timeout,omitempty" json:"timeout,omitempty"`
	TTL         Duration          `yaml:"ttl,omitempty" json:"ttl,omitempty"`
	// MinReady is how long every task of an attempt must have run (and be healthy, where it
	// has a healthcheck) without a restart before the app is Ready. Nil: each service's
	// update_config.monitor when the recipe sets it, else DefaultMinReady, as swarm and
	// `docker stack deploy --detach=false` wait. Zero turns the window off.
	MinReady *Duration `yaml:"minReady,omitempty" json:"minReady,omitempty"`
	Suspend  bool      `yaml:"suspend,omitempty" json:"suspend,omitempty"`
	Health   []Probe   `yaml:"health,omitempty" json:"health,omitempty"`
	Backup   *Backup   `yaml:"backup,omitempty" json:"backup,omitempty"`
	// Overlays are compose documents merged after the recipe's COMPOSE_FILE list, in order, as
	// more -c files to `docker stack deploy` would be: a CI's own patches of a recipe.
	Overlays []Overlay `yaml:"overlays,omitempty" json:"overlays,omitempty"`
}

// OverlayRef names an overlay applied: its file (or inline[N]) and the SHA-256 of its bytes.
type OverlayRef struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

// Overlay is one compose overlay: File (relative to the spec directory, inside it) or Inline.
type Overlay struct {
	File   string `yaml:"file,omitempty" json:"file,omitempty"`
	Inline string `yaml:"inline,omitempty" json:"inline,omitempty"`
	// Line is the overlay's line in the spec file, InlineLine its inline document's first
	// line, for messages.
	Line       int `yaml:"-" json:"-"`
	InlineLine int `yaml:"-" json:"-"`
}

// Backup is what a spec asks of the app's backups, made on its recipe's backup-bot-two labels.
type Backup struct {
	// Schedule, when set, makes backups while the app lives: "@every 24h", "@daily" or a
	// five-field cron line, in UTC.
	Schedule string `yaml:"schedule,omitempty" json:"schedule,omitempty"`
	// Keep, when positive, keeps the newest Keep complete backups of the app and removes older ones.
	Keep int `yaml:"keep,omitempty" json:"keep,omitempty"`
	// Checks run in a service's container around the backup tier's backup and restore.
	Checks BackupChecks `yaml:"checks,omitempty" json:"checks,omitempty"`
	// RequestedAt asks for one backup each time its value changes: `reconciler backup` sets it,
	// as Flux's reconcile.fluxcd.io/requestedAt annotation asks for a reconcile.
	RequestedAt string `yaml:"requestedAt,omitempty" json:"requestedAt,omitempty"`
	// Restore asks for one restore each time its RequestedAt changes (`reconciler restore`).
	Restore *RestoreRequest `yaml:"restore,omitempty" json:"restore,omitempty"`
}

// RestoreRequest asks for a restore of backup ID (the newest complete backup when empty).
type RestoreRequest struct {
	RequestedAt string `yaml:"requestedAt" json:"requestedAt"`
	ID          string `yaml:"id,omitempty" json:"id,omitempty"`
}

// BackupChecks are commands a test runs in the app's containers; each must exit 0.
type BackupChecks struct {
	BeforeBackup  []Check `yaml:"beforeBackup,omitempty" json:"beforeBackup,omitempty"`
	BeforeRestore []Check `yaml:"beforeRestore,omitempty" json:"beforeRestore,omitempty"`
	AfterRestore  []Check `yaml:"afterRestore,omitempty" json:"afterRestore,omitempty"`
}

// Check is a shell command (`/bin/sh -c`) run in a running container of Service (its name in
// the recipe, e.g. app).
type Check struct {
	Service string `yaml:"service" json:"service"`
	Run     string `yaml:"run" json:"run"`
}

// Probe is one readiness check run after swarm convergence. Exactly one of HTTP and TCP is set.
type Probe struct {
	HTTP   string `yaml:"http,omitempty" json:"http,omitempty"`
	TCP    string `yaml:"tcp,omitempty" json:"tcp,omitempty"`
	OK     []int  `yaml:"ok,omitempty" json:"ok,omitempty"`
	Stable int    `yaml:"stable,omitempty" json:"stable,omitempty"`
}

// Duration is a time.Duration written as "15m" in spec files.
type Duration struct{ time.Duration }

// Phase is an app's place in its lifecycle, as reported in the status file.
type Phase string

// The phases of DESIGN.md. Failed, Invalid, Deleted and Expired are final for a generation.
const (
	PhasePending   Phase = "Pending"
	PhaseDeploying Phase = "Deploying"
	PhaseUpgrading Phase = "Upgrading"
	PhaseReady     Phase = "Ready"
	PhaseDegraded  Phase = "Degraded"
	PhaseFailed    Phase = "Failed"
	PhaseInvalid   Phase = "Invalid"
	PhaseSuspended Phase = "Suspended"
	PhaseDeleting  Phase = "Deleting"
	PhaseDeleted   Phase = "Deleted"
	PhaseExpired   Phase = "Expired"
)

// Final reports whether no further progress is expected for the current generation.
func (p Phase) Final() bool {
	switch p {
	case PhaseFailed, PhaseInvalid, PhaseDeleted, PhaseExpired:
		return true
	}
	return false
}

// Status is the content of <status>/<app>.json. Field names are the file's contract.
type Status struct {
	App                   string      `json:"app"`
	ObservedGeneration    string      `json:"observedGeneration"`
	Phase                 Phase       `json:"phase"`
	Conditions            []Condition `json:"conditions"`
	Message               string      `json:"message"`
	Recipe                string      `json:"recipe,omitempty"`
	Version               string      `json:"version,omitempty"`
	Tier                  Tier        `json:"tier,omitempty"`
	Domain                string      `json:"domain,omitempty"`
	Stack                 string      `json:"stack,omitempty"`
	LastAttemptedRevision string      `json:"lastAttemptedRevision,omitempty"`
	// Source and SourceCommit are the spec's source and, for a ref, the commit it pointed at
	// when this generation was first reconciled: what the app deploys.
	Source              string `json:"source,omitempty"`
	SourceCommit        string `json:"sourceCommit,omitempty"`
	LastAppliedRevision string `json:"lastAppliedRevision,omitempty"`
	// Overlays are the spec's overlays merged into the last attempted revision, in order.
	Overlays []OverlayRef `json:"overlays,omitempty"`
	Deploys  int          `json:"deploys"`
	// DeployedGeneration is the generation whose deploy is counted in Deploys, so a retried
	// apply of one generation is counted once.
	DeployedGeneration string `json:"deployedGeneration,omitempty"`
	// UpgradeStage is "from" while an upgrade-tier attempt deploys upgradeFrom, then "to".
	UpgradeStage     string     `json:"upgradeStage,omitempty"`
	FirstDeployedAt  *time.Time `json:"firstDeployedAt,omitempty"`
	AttemptStartedAt *time.Time `json:"attemptStartedAt,omitempty"`
	// SetBacks counts the set-backs of a hand change that swarm rolled back made again since
	// the app was last Ready, the last at SetBackAt: each waits twice as long as the one before.
	SetBacks  int             `json:"setBacks,omitempty"`
	SetBackAt *time.Time      `json:"setBackAt,omitempty"`
	Services  []ServiceStatus `json:"services"`
	Removed   []string        `json:"removed,omitempty"`
	// Nodes are the swarm nodes, other than the reconciler's own, that ran a task of the app,
	// with the app's volumes those tasks mounted there: volumes are node-local, and a
	// teardown removes them on each of these nodes before the app is Deleted.
	Nodes []NodeVolumes `json:"nodes,omitempty"`
	// NodesNotAsked are the nodes (hostnames) whose inventory of volumes could not be read
	// when the orphan sweep found volumes of the app on other nodes: the app's volumes may be
	// left there, and the next start or `reconciler janitor` asks them again.
	NodesNotAsked []string `json:"nodesNotAsked,omitempty"`
	// JobContainers are the containers, on the reconciler's node, of the tasks of the app's
	// recipe jobs that a teardown or an upgrade stops: swarm forgets a stopped job's task a
	// moment after it ends, and with it the only record of its container, which the node's
	// agent keeps; recorded while the task is listed, each is removed with its job.
	JobContainers []JobContainer `json:"jobContainers,omitempty"`
	// BackupStage is where the backup tier's sequence is: "" (backup due), "restore" (the
	// backup in LastBackup is to be restored), "done".
	BackupStage string `json:"backupStage,omitempty"`
	// LastBackup and LastRestore are the newest backup and restore, as they run and once done.
	LastBackup  *BackupRun `json:"lastBackup,omitempty"`
	LastRestore *BackupRun `json:"lastRestore,omitempty"`
	// AttemptKey is the spec's AttemptKey when its attempt began: a new generation with the
	// same key (a backup or restore request, nothing else) continues the attempt.
	AttemptKey string `json:"attemptKey,omitempty"`
	// LastHandledBackupAt and LastHandledRestoreAt are the spec's backup.requestedAt and
	// backup.restore.requestedAt values last carried out: a request is due while they differ.
	LastHandledBackupAt  string `json:"lastHandledBackupAt,omitempty"`
	LastHandledRestoreAt string `json:"lastHandledRestoreAt,omitempty"`
	// Requests are the outcomes of the newest on-demand backups and restores (at most
	// MaxRequests): a `--wait` whose run a later one replaced in LastBackup or LastRestore
	// before it looked still finds its own.
	Requests  []RequestOutcome `json:"requests,omitempty"`
	History   []HistoryEntry   `json:"history"`
	UpdatedAt time.Time        `json:"updatedAt"`
}

// MaxRequests bounds Status.Requests.
const MaxRequests = 10

// RequestOutcome is how one on-demand backup or restore ended.
type RequestOutcome struct {
	// Kind is "backup" or "restore"; Request the requestedAt value the CLI wrote.
	Kind    string   `json:"kind"`
	Request string   `json:"request"`
	ID      string   `json:"id,omitempty"`
	State   RunState `json:"state"`
	Message string   `json:"message,omitempty"`
}

// Outcome is the recorded end of the request of kind ("backup" or "restore") with the
// requestedAt value token, or nil.
func (s *Status) Outcome(kind, token string) *RequestOutcome {
	for i := range s.Requests {
		if s.Requests[i].Kind == kind && s.Requests[i].Request == token {
			return &s.Requests[i]
		}
	}
	return nil
}

// RecordRequests adds the ends of LastBackup and LastRestore, if they are requests that
// ended, to Requests.
func (s *Status) RecordRequests() {
	for _, r := range []struct {
		kind string
		run  *BackupRun
	}{{"backup", s.LastBackup}, {"restore", s.LastRestore}} {
		if r.run == nil || r.run.Request == "" || r.run.State == RunRunning || s.Outcome(r.kind, r.run.Request) != nil {
			continue
		}
		s.Requests = append(s.Requests, RequestOutcome{Kind: r.kind, Request: r.run.Request, ID: r.run.ID, State: r.run.State, Message: r.run.Message})
		if len(s.Requests) > MaxRequests {
			s.Requests = slices.Clone(s.Requests[len(s.Requests)-MaxRequests:])
		}
	}
}

// Condition follows the Kubernetes condition convention (Ready, Reconciling, Stalled).
type Condition struct {
	Type               string    `json:"type"`
	Status             string    `json:"status"`
	Reason             string    `json:"reason"`
	Message            string    `json:"message"`
	LastTransitionTime time.Time `json:"lastTransitionTime"`
}

// ServiceStatus is one swarm service of the app as last observed.
type ServiceStatus struct {
	Name        string       `json:"name"`
	Image       string       `json:"image"`
	Running     int          `json:"running"`
	Desired     int          `json:"desired"`
	UpdateState string       `json:"updateState,omitempty"`
	Tasks       []TaskStatus `json:"tasks,omitempty"`
}

// NodeVolumes is a node that ran a task of the app, and the app's named volumes there.
type NodeVolumes struct {
	ID       string   `json:"id"`
	Hostname string   `json:"hostname,omitempty"`
	Volumes  []string `json:"volumes"`
	// Jobs are the IDs of the recipe's job services (replicated-job, global-job) that ran a
	// task on the node: swarm's agent keeps a job's finished container for good once its
	// service is gone, so the node's teardown job removes those containers too.
	Jobs []string `json:"jobs,omitempty"`
}

// TaskStatus is one of the newest tasks of a service.
type TaskStatus struct {
	ID       string    `json:"id,omitempty"`
	State    string    `json:"state"`
	Error    string    `json:"error"`
	ExitCode *int      `json:"exitCode,omitempty"`
	Since    time.Time `json:"since"`
	// Node is the hostname of the node the task was placed on, when it is not the
	// reconciler's own.
	Node string `json:"node,omitempty"`
	// Logs are the last lines a failed task wrote (stdout and stderr), secrets redacted; or
	// one line saying why they cannot be read.
	Logs []string `json:"logs,omitempty"`
}

// BackupRun is one backup or restore of an app: what asked for it, how far it got, and what
// it moved.
type BackupRun struct {
	// ID names the backup (the one made, or the one restored).
	ID string `json:"id,omitempty"`
	// Trigger is what asked for it: "tier", "schedule", or "request" (`reconciler backup`,
	// `reconciler restore`); Request is the request's requestedAt value.
	Trigger  string      `json:"trigger"`
	Request  string      `json:"request,omitempty"`
	State    RunState    `json:"state"`
	Started  time.Time   `json:"started"`
	Finished *time.Time  `json:"finished,omitempty"`
	Volumes  []VolumeRun `json:"volumes,omitempty"`
	Files    int         `json:"files"`
	Bytes    int64       `json:"bytes"`
	Hooks    []HookRun   `json:"hooks,omitempty"`
	Message  string      `json:"message,omitempty"`
	// Interrupted says the reconciler stopped while the run went on (found Running by the
	// next process): a scheduled backup cut short is made again at once.
	Interrupted bool `json:"interrupted,omitempty"`
	// PostHooksOwed, on a restore found interrupted, are the services whose restore post-hook
	// is still owed: their pre-hook ran, and no run of the post-hook has reached a container
	// of theirs yet. Tried again while the app lives; not after a teardown, which took the
	// containers (and the volumes) the pre-hooks changed.
	PostHooksOwed []string `json:"postHooksOwed,omitempty"`
}

// RunState is how far a backup or restore got.
type RunState string

// The states of a BackupRun.
const (
	RunRunning   RunState = "Running"
	RunCompleted RunState = "Completed"
	RunFailed    RunState = "Failed"
)

// JobContainer is the container of a task of a recipe job: its service's ID and its own.
type JobContainer struct {
	Service   string `json:"service"`
	Container string `json:"container"`
}

// VolumeRun is one volume a backup read or a restore wrote.
type VolumeRun struct {
	Name  string   `json:"name"`
	Paths []string `json:"paths,omitempty"`
	Files int      `json:"files"`
	Bytes int64    `json:"bytes"`
}

// HookRun is one hook or check run in a container, with its exit code and last output lines.
type HookRun struct {
	Service  string   `json:"service"`
	Hook     string   `json:"hook"`
	Command  string   `json:"command"`
	ExitCode int      `json:"exitCode"`
	Output   []string `json:"output,omitempty"`
	// NotRun says the engine refused to start the command (its container had stopped or was
	// gone): a restore post-hook owed is tried again.
	NotRun bool `json:"notRun,omitempty"`
}

// HistoryEntry records one phase change.
type HistoryEntry struct {
	Time    time.Time `json:"time"`
	Phase   Phase     `json:"phase"`
	Message string    `json:"message"`
}
