// Fault injection: the OMEZARRFS_FAULT specs are parsed once; a malformed spec is reported on
// stderr and ignored, so a typo never turns a test into a silent no-op without a trace.
#include "core/base/fault.h"

#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace oz {
namespace {

struct Spec {
  std::string point;
  bool kill = false;
  uint64_t nth = 1;       // kill: at this hit
  uint64_t delay_ms = 0;  // delay: every hit
  std::atomic<uint64_t> hits{0};
};

std::vector<std::unique_ptr<Spec>> Parse(const char* env) {
  std::vector<std::unique_ptr<Spec>> out;
  std::string all(env);
  size_t pos = 0;
  while (pos <= all.size()) {
    size_t end = all.find(';', pos);
    if (end == std::string::npos) end = all.size();
    std::string item = all.substr(pos, end - pos);
    pos = end + 1;
    if (item.empty()) continue;
    size_t colon = item.rfind(':');
    auto spec = std::make_unique<Spec>();
    bool ok = colon != std::string::npos && colon > 0;
    if (ok) {
      spec->point = item.substr(0, colon);
      std::string action = item.substr(colon + 1);
      char* rest = nullptr;
      if (action == "kill") {
        spec->kill = true;
      } else if (action.rfind("kill@", 0) == 0) {
        spec->kill = true;
        spec->nth = std::strtoull(action.c_str() + 5, &rest, 10);
        ok = rest && *rest == '\0' && spec->nth > 0;
      } else if (action.rfind("delay=", 0) == 0) {
        spec->delay_ms = std::strtoull(action.c_str() + 6, &rest, 10);
        ok = rest && *rest == '\0';
      } else {
        ok = false;
      }
    }
    if (!ok) {
      std::fprintf(stderr,
                   "omezarrfs: OMEZARRFS_FAULT: ignoring malformed spec '%s' (POINT:kill[@N] or POINT:delay=MS)\n",
                   item.c_str());
      continue;
    }
    out.push_back(std::move(spec));
  }
  return out;
}

const std::vector<std::unique_ptr<Spec>>& Specs() {
  static const std::vector<std::unique_ptr<Spec>> specs = [] {
    const char* env = std::getenv("OMEZARRFS_FAULT");
    return env ? Parse(env) : std::vector<std::unique_ptr<Spec>>();
  }();
  return specs;
}

}  // namespace

bool FaultsEnabled() {
  static const bool enabled = std::getenv("OMEZARRFS_FAULT") != nullptr;
  return enabled;
}

void HitFault(std::string_view site, std::string_view step) {
  for (const auto& s : Specs()) {
    const std::string_view p = s->point;
    const bool match = step.empty() ? p == site
                                    : p.size() == site.size() + 1 + step.size() && p.substr(0, site.size()) == site &&
                                          p[site.size()] == '.' && p.substr(site.size() + 1) == step;
    if (!match) continue;
    const uint64_t n = s->hits.fetch_add(1) + 1;
    if (s->kill && n == s->nth) ::kill(::getpid(), SIGKILL);
    if (s->delay_ms) std::this_thread::sleep_for(std::chrono::milliseconds(s->delay_ms));
  }
}

}  // namespace oz
