// StopSignal: turns SIGINT/SIGTERM into a flag the training loop polls between steps.
#pragma once

namespace lowbit {

// While an instance lives, the first SIGINT or SIGTERM only sets the flag (the trainer
// finishes the step, writes last.safetensors and returns); a second one restores the default
// action and re-raises, so a stuck run can still be killed. The previous handlers come back
// on destruction. One instance at a time.
class StopSignal {
 public:
  StopSignal();
  ~StopSignal();
  StopSignal(const StopSignal&) = delete;
  StopSignal& operator=(const StopSignal&) = delete;

  static bool requested();
  static int signal_number();  // the signal that asked, 0 if none
  // Sets the flag as a signal would (tests, and embedding programs that stop a run).
  static void request(int signal_number = 0);
  static void clear();
};

}  // namespace lowbit
