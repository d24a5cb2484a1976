package faults

// helperEnv, set in a child process's environment, makes the test binary
// that helper instead of running tests.
const helperEnv = "JOBSTATE_FAULTS_HELPER"

func helperMain() int { return 2 }
