// StopSignal: async-signal-safe flag set by SIGINT/SIGTERM handlers.
#include "stop_signal.h"

#include <atomic>
#include <csignal>

namespace lowbit {
namespace {

std::atomic<int> g_signal{0};
std::atomic<bool> g_requested{false};
struct sigaction g_old_int, g_old_term;

void handler(int sig) {
  if (g_requested.exchange(true)) {
    std::signal(sig, SIG_DFL);  // second signal: give up on a clean stop
    std::raise(sig);
    return;
  }
  g_signal.store(sig);
}

}  // namespace

StopSignal::StopSignal() {
  clear();
  struct sigaction sa {};
  sa.sa_handler = handler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, &g_old_int);
  sigaction(SIGTERM, &sa, &g_old_term);
}

StopSignal::~StopSignal() {
  sigaction(SIGINT, &g_old_int, nullptr);
  sigaction(SIGTERM, &g_old_term, nullptr);
}

bool StopSignal::requested() { return g_requested.load(); }
int StopSignal::signal_number() { return g_signal.load(); }
void StopSignal::request(int signal_number) {
  g_signal.store(signal_number);
  g_requested.store(true);
}
void StopSignal::clear() {
  g_requested.store(false);
  g_signal.store(0);
}

}  // namespace lowbit
