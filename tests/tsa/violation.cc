// Must NOT compile under clang -Wthread-safety -Werror=thread-safety (scripts/test.sh checks that
// it fails, so the analysis that guards core/'s locking rules is known to be live).
#include "core/sync/mutex.h"

namespace {

struct Counter {
  oz::Mutex mu;
  int value OZ_GUARDED_BY(mu) = 0;
  void Bump() { ++value; }  // reads and writes `value` without holding mu
};

}  // namespace

int main() {
  Counter c;
  c.Bump();
  return 0;
}
