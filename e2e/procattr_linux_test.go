package e2e

import "syscall"

// childProcAttr makes a reconciler get SIGTERM when the test binary dies (a timeout panic,
// a kill), so no reconciler outlives its run and sweeps the next run's apps as orphans.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
