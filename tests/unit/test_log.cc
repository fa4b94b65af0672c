// Log: the status line (progress bar) that log lines on stderr are printed above.
#include <fcntl.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

#include "core/base/log.h"

namespace oz {
namespace {

// Sends fd 2 to a temp file while alive; Text() is what was written.
struct StderrCapture {
  int saved = -1;
  std::FILE* file = nullptr;
  StderrCapture() {
    std::fflush(stderr);
    file = std::tmpfile();
    REQUIRE(file != nullptr);
    saved = ::dup(2);
    REQUIRE(::dup2(::fileno(file), 2) == 2);
  }
  ~StderrCapture() {
    ::dup2(saved, 2);
    ::close(saved);
    std::fclose(file);
  }
  std::string Text() {
    std::string s;
    char buf[4096];
    ::lseek(::fileno(file), 0, SEEK_SET);
    for (ssize_t n; (n = ::read(::fileno(file), buf, sizeof buf)) > 0;) s.append(buf, static_cast<size_t>(n));
    return s;
  }
};

}  // namespace

TEST_CASE("Log prints lines above a status line and draws it again, whole, from many threads") {
  const std::string erase = "\r\033[K";
  std::string out;
  {
    StderrCapture cap;
    ShowStatusLine("[##--] 1/4");
    std::vector<std::thread> ts;
    for (int t = 0; t < 4; ++t)
      ts.emplace_back([t] {
        for (int i = 0; i < 50; ++i) LogWarning("thread " + std::to_string(t) + " line " + std::to_string(i));
      });
    ShowStatusLine("[###-] 3/4");
    for (auto& th : ts) th.join();
    EndStatusLine();
    EndStatusLine();  // no second newline
    LogWarning("after the bar");
    out = cap.Text();
  }
  // Every log line while the bar is shown: erase, the line, then a bar; never a line in a bar.
  size_t lines = 0, pos = 0;
  while ((pos = out.find("omezarrfs warning: thread ", pos)) != std::string::npos) {
    const size_t start = out.rfind(erase, pos);
    REQUIRE(start != std::string::npos);
    CHECK(out.substr(start + erase.size(), 20).find('[') == std::string::npos);  // a timestamp, not a bar
    const size_t nl = out.find('\n', pos);
    REQUIRE(nl != std::string::npos);
    CHECK((out.compare(nl + 1, 6, "[##--]") == 0 || out.compare(nl + 1, 6, "[###-]") == 0));
    ++lines;
    pos = nl;
  }
  CHECK(lines == 200);
  // The end: the last bar stays, one newline, then plain lines without erasing.
  const size_t last = out.rfind("[###-] 3/4");
  REQUIRE(last != std::string::npos);
  CHECK(out.compare(last, 11, "[###-] 3/4\n") == 0);
  const std::string tail = out.substr(last + 11);
  CHECK(tail.find(erase) == std::string::npos);
  CHECK(tail.find("omezarrfs warning: after the bar\n") != std::string::npos);
}

}  // namespace oz
