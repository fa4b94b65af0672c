// omezarrfs: mounts a directory of z-slice TIFFs as a read-only OME-Zarr tree.
//
// Start-up: parse and validate everything, fork (before any thread exists), open the source and
// mount in the child, then tell the parent through a pipe; the parent exits 0 only once the mount
// is in place, or 1 after the child printed why it could not start (squashfuse's notify_pipe).
// Under systemd (a Type=notify unit running it with -f) the same point sends READY=1.
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <syslog.h>
#include <unistd.h>

#include <blosc.h>
#include <tiffio.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <string>
#include <thread>
#include <vector>

#include "core/base/log.h"
#include "core/session/session.h"
#include "core/store/mountinfo.h"
#include "core/version.h"
#include "fs/fuse_ops.h"
#include "mountopts/mount_options.h"

#include <fuse_lowlevel.h>  // fuse_session_exited (after fs/fuse_ops.h, which sets FUSE_USE_VERSION)

namespace {

enum ExitCode { kExitOk = 0, kExitStartFailed = 1, kExitUsage = 2 };

void Err(const std::string& m) { std::fprintf(stderr, "omezarrfs: %s\n", m.c_str()); }

// fsname is shown as the device in /proc/mounts; commas and backslashes must be escaped there.
std::string EscapeOptValue(const std::string& s) {
  std::string r;
  for (char c : s) {
    if (c == ',' || c == '\\') r += '\\';
    r += c;
  }
  return r;
}

oz::Status CheckMountpoint(const std::string& mp) {
  struct stat st;
  struct statvfs vfs;
  // statfs always reaches the filesystem (stat may be answered from the kernel's attribute
  // cache), so it is what reveals a mount whose daemon died.
  if (statvfs(mp.c_str(), &vfs) != 0 || stat(mp.c_str(), &st) != 0) {
    if (errno == ENOTCONN || errno == ECONNABORTED)
      return oz::IoError("mountpoint " + mp +
                         " is a stale mount left by a daemon that died (Transport endpoint is not connected); "
                         "run: fusermount3 -u " +
                         mp + "   (or umount -l " + mp + ") and mount again");
    return oz::ErrnoError(errno, "mountpoint " + mp);
  }
  if (!S_ISDIR(st.st_mode)) return oz::InvalidArgumentError("mountpoint " + mp + " is not a directory");
  return oz::OkStatus();
}

// Tells systemd (a Type=notify service, systemd/omezarrfs@.service) that the mount answers, by
// the sd_notify datagram protocol to `socket_path` ($NOTIFY_SOCKET; empty = not under systemd).
void NotifySystemdReady(const std::string& socket_path) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (socket_path.empty() || (socket_path[0] != '/' && socket_path[0] != '@') ||
      socket_path.size() >= sizeof addr.sun_path)
    return;
  std::memcpy(addr.sun_path, socket_path.data(), socket_path.size());
  if (socket_path[0] == '@') addr.sun_path[0] = '\0';  // abstract socket
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return;
  const std::string msg = "READY=1\nMAINPID=" + std::to_string(getpid()) + "\n";
  const auto len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + socket_path.size());
  if (sendto(fd, msg.data(), msg.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&addr), len) < 0)
    oz::LogWarning(std::string("cannot notify systemd through NOTIFY_SOCKET: ") + std::strerror(errno));
  close(fd);
}

void SyslogSink(oz::LogLevel level, std::string_view m) {
  int prio = level == oz::LogLevel::kError     ? LOG_ERR
             : level == oz::LogLevel::kWarning ? LOG_WARNING
             : level == oz::LogLevel::kInfo    ? LOG_INFO
                                               : LOG_DEBUG;
  syslog(prio, "%.*s", static_cast<int>(m.size()), m.data());
}

int Serve(const oz::CommandLine& cl, int notify_fd, const std::string& systemd_socket) {
  auto notify = [&](char code) {
    if (notify_fd >= 0) {
      (void)!write(notify_fd, &code, 1);
      close(notify_fd);
      notify_fd = -1;
    }
  };
  oz::SessionParams sp;
  sp.source = cl.source;
  sp.options = cl.options;
  auto session = oz::OpenSession(sp);
  if (!session.ok()) {
    Err("cannot mount " + cl.source + ": " + session.status().message());
    notify(1);
    return kExitStartFailed;
  }
  oz::Session& s = **session;
  oz::LogInfo("serving " + s.volume->Describe() + " as " + std::to_string(s.engine->pyramid().levels()) +
              " levels, level-0 shape " + oz::ToString(s.engine->pyramid().shape(0)) + ", cache " +
              (s.cache_dir.empty() ? std::string("off") : s.cache_dir));

  oz::FsContext ctx;
  ctx.tree = s.mount.get();
  ctx.stats = &s.stats;
  ctx.mount_time = time(nullptr);

  std::vector<std::string> args = {"omezarrfs", "-o",
                                   "ro,default_permissions,fsname=" + EscapeOptValue(s.source) + ",subtype=omezarrfs"};
  if (!cl.flags.fuse_options.empty()) args.insert(args.end(), {"-o", oz::JoinFuseOptions(cl.flags.fuse_options)});
  if (cl.flags.debug) args.push_back("-d");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  fuse_args fargs = FUSE_ARGS_INIT(static_cast<int>(argv.size()), argv.data());
  const fuse_operations& ops = oz::GetFuseOperations();
  fuse* f = fuse_new(&fargs, &ops, sizeof ops, &ctx);
  if (!f) {
    Err("cannot mount " + cl.mountpoint + ": libfuse rejected the FUSE options (see the message above)");
    notify(1);
    return kExitStartFailed;
  }
  if (fuse_mount(f, cl.mountpoint.c_str()) != 0) {
    Err("cannot mount at " + cl.mountpoint +
        " (see the message above; is it already mounted, or is /dev/fuse missing or fusermount3 not installed?)");
    fuse_destroy(f);
    notify(1);
    return kExitStartFailed;
  }
  // Tell a later mount on this cache which mount we serve, so that once it is unmounted that
  // mount waits for our exit instead of being refused (core/store/disk_cache.h, MarkServing).
  if (s.cache) {
    char real[PATH_MAX];
    if (realpath(cl.mountpoint.c_str(), real) != nullptr) {
      if (auto m = oz::FindOwnMount(real, "fuse.omezarrfs")) (void)s.cache->MarkServing(*m);
    }
  }
  fuse_session* se = fuse_get_session(f);
  if (fuse_set_signal_handlers(se) != 0) {
    Err("cannot install signal handlers");
    fuse_unmount(f);
    fuse_destroy(f);
    notify(1);
    return kExitStartFailed;
  }
  if (notify_fd >= 0) {
    // Detach from the terminal: the parent returns to the shell now.
    int devnull = open("/dev/null", O_RDWR);
    if (devnull >= 0) {
      dup2(devnull, 0);
      dup2(devnull, 1);
      dup2(devnull, 2);
      if (devnull > 2) close(devnull);
    }
    if (cl.flags.log_file.empty()) {
      openlog("omezarrfs", LOG_PID, LOG_DAEMON);
      oz::SetLogSink(SyslogSink);
    }
    (void)!chdir("/");
    notify(0);
  }
  NotifySystemdReady(systemd_socket);
  // From the moment the mount answers: -o prebuild=K (checked at OpenSession already).
  if (oz::Status ps = oz::StartPrebuild(s); !ps.ok()) oz::LogError(ps.message());
  // A signal or an unmount ends the session, but libfuse returns from its loop only once the
  // requests in flight are answered, and computing a coarse chunk can take minutes: cancel the
  // computations as soon as the session is over (they fail at their next unit).
  // The cache lock is released only when this process exits: mark it as exiting at once, so a
  // mount started meanwhile waits for it.
  auto mark_exiting = [&] {
    if (s.cache) (void)s.cache->MarkExiting();
  };
  std::atomic<bool> loop_done{false};
  std::thread watcher([&] {
    while (!loop_done.load()) {
      if (fuse_session_exited(se)) {
        mark_exiting();
        if (s.prebuild) s.prebuild->RequestStop();
        s.engine->Cancel();
        for (auto& label : s.labels) label->engine->Cancel();
        return;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  int rc;
  if (cl.flags.single_thread) {
    rc = fuse_loop(f);
  } else {
    fuse_loop_config* lc = fuse_loop_cfg_create();
    fuse_loop_cfg_set_clone_fd(lc, 0);
    fuse_loop_cfg_set_max_threads(lc, 64);
    rc = fuse_loop_mt(f, lc);
    fuse_loop_cfg_destroy(lc);
  }
  mark_exiting();
  loop_done = true;
  watcher.join();
  if (s.prebuild) s.prebuild->Stop();  // before the mount goes: it stops at its next unit
  fuse_remove_signal_handlers(se);
  fuse_unmount(f);
  fuse_destroy(f);
  fuse_opt_free_args(&fargs);
  // 0: unmounted; > 0: stopped by that signal (SIGTERM from `systemctl stop`, Ctrl-C): both are
  // a clean stop, which a service manager must not count as a failure. < 0: -errno.
  if (rc < 0) {
    oz::LogError(std::string("the FUSE loop failed: ") + std::strerror(-rc));
    return kExitStartFailed;
  }
  oz::LogInfo("unmounted " + cl.mountpoint);
  return kExitOk;
}

// `omezarrfs status MNT`: the mount's stats xattr, for a person (oz::FormatStatusReport).
int Status(const char* mnt) {
  std::string text(1 << 16, '\0');
  const ssize_t n = getxattr(mnt, oz::kStatsXattr, text.data(), text.size());
  if (n < 0) {
    const int e = errno;
    if (e == ENODATA || e == ENOTSUP)
      Err(std::string(mnt) + " is not an omezarrfs mount (it has no " + oz::kStatsXattr +
          " attribute); give the mountpoint of a running omezarrfs (see: findmnt -t fuse.omezarrfs)");
    else if (e == ENOTCONN || e == ECONNABORTED)
      Err(std::string(mnt) + " is a stale mount left by a daemon that died; run: fusermount3 -u " + mnt);
    else
      Err(std::string(mnt) + ": " + std::strerror(e));
    return kExitStartFailed;
  }
  text.resize(static_cast<size_t>(n));
  std::fputs(oz::FormatStatusReport(mnt, text).c_str(), stdout);
  return kExitOk;
}

}  // namespace

int main(int argc, char** argv) {
  // A subcommand (a source directory named "status" is given as ./status).
  if (argc >= 2 && std::strcmp(argv[1], "status") == 0) {
    if (argc != 3) {
      Err("usage: omezarrfs status MOUNTPOINT");
      return kExitUsage;
    }
    return Status(argv[2]);
  }
  // Chunks are multi-MiB buffers allocated and freed on many threads: a few arenas and a high
  // mmap threshold let freed buffers be reused instead of re-faulted from the kernel each time,
  // and keep per-thread arenas from holding on to memory beyond -o memory.
  // (32 MiB is glibc's maximum mmap threshold; larger unit buffers are reused by the engine's
  // BufferPool instead.)
  mallopt(M_ARENA_MAX, 2);
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 64 << 20);
  auto parsed = oz::ParseCommandLine(argc, argv);
  if (!parsed.ok()) {
    Err(parsed.status().message());
    std::fprintf(stderr, "Try 'omezarrfs --help' for the options.\n");
    return kExitUsage;
  }
  oz::CommandLine cl = std::move(parsed).value();
  if (cl.help) {
    std::fputs(oz::OptionsHelpText().c_str(), stdout);
    return kExitOk;
  }
  if (cl.version) {
    std::printf("omezarrfs %s (libfuse %d.%d, %s, c-blosc %s)\n", OMEZARRFS_VERSION, FUSE_MAJOR_VERSION,
                FUSE_MINOR_VERSION, TIFFGetVersion(), BLOSC_VERSION_STRING);
    return kExitOk;
  }
  if (!cl.flags.log_level.empty()) {
    const std::string& l = cl.flags.log_level;
    oz::SetLogLevel(l == "debug"     ? oz::LogLevel::kDebug
                    : l == "warning" ? oz::LogLevel::kWarning
                    : l == "error"   ? oz::LogLevel::kError
                                     : oz::LogLevel::kInfo);
  }
  if (!cl.flags.log_file.empty()) oz::SetLogFile(cl.flags.log_file);
  if (oz::Status s = CheckMountpoint(cl.mountpoint); !s.ok()) {
    Err(s.message());
    return kExitStartFailed;
  }
  // Read once and removed, so that helpers libfuse starts (fusermount3) do not inherit it.
  std::string systemd_socket;
  if (const char* ns = std::getenv("NOTIFY_SOCKET")) systemd_socket = ns;
  unsetenv("NOTIFY_SOCKET");
  const bool foreground = cl.flags.foreground || cl.flags.debug;
  if (foreground) return Serve(cl, -1, systemd_socket);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    Err(std::string("pipe: ") + std::strerror(errno));
    return kExitStartFailed;
  }
  pid_t pid = fork();
  if (pid < 0) {
    Err(std::string("fork: ") + std::strerror(errno));
    return kExitStartFailed;
  }
  if (pid == 0) {
    close(fds[0]);
    setsid();
    return Serve(cl, fds[1], systemd_socket);
  }
  close(fds[1]);
  char code = 1;
  ssize_t n;
  do {
    n = read(fds[0], &code, 1);
  } while (n < 0 && errno == EINTR);
  if (n == 1 && code == 0) return kExitOk;
  if (n != 1) {
    int status = 0;
    waitpid(pid, &status, 0);
    Err("the daemon exited during start-up" +
        (WIFSIGNALED(status) ? std::string(" (signal ") + std::to_string(WTERMSIG(status)) + ")" : std::string()));
  }
  return kExitStartFailed;
}
