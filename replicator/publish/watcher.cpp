// inotify-based change detection (see watcher.hpp).
#include "replicator/publish/watcher.hpp"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/inotify.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>

#include <spdlog/spdlog.h>

namespace harmony {

ChangeWatcher::ChangeWatcher(const std::string& db_path) {
  std::filesystem::path p = std::filesystem::absolute(db_path);
  db_name_ = p.filename().string();
  wal_name_ = db_name_ + "-wal";
  wake_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  inotify_fd_ = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
  if (inotify_fd_ >= 0) {
    std::string dir = p.parent_path().string();
    if (inotify_add_watch(inotify_fd_, dir.c_str(),
                          IN_MODIFY | IN_CLOSE_WRITE | IN_CREATE | IN_MOVED_TO) < 0) {
      spdlog::warn("cannot watch {} for changes ({}); falling back to polling", dir,
                   std::strerror(errno));
      close(inotify_fd_);
      inotify_fd_ = -1;
    }
  } else {
    spdlog::warn("inotify unavailable ({}); falling back to polling", std::strerror(errno));
  }
}

ChangeWatcher::~ChangeWatcher() {
  if (inotify_fd_ >= 0) close(inotify_fd_);
  if (wake_fd_ >= 0) close(wake_fd_);
}

void ChangeWatcher::wake() {
  uint64_t one = 1;
  if (wake_fd_ >= 0) (void)!write(wake_fd_, &one, sizeof one);
}

bool ChangeWatcher::wait(std::chrono::milliseconds timeout) {
  pollfd fds[2];
  int n = 0;
  fds[n++] = {wake_fd_, POLLIN, 0};
  if (inotify_fd_ >= 0) fds[n++] = {inotify_fd_, POLLIN, 0};
  int rc = poll(fds, static_cast<nfds_t>(n), static_cast<int>(timeout.count()));
  if (rc <= 0) return false;
  bool seen = false;
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    (void)!read(wake_fd_, &v, sizeof v);
    seen = true;
  }
  if (n > 1 && (fds[1].revents & POLLIN)) {
    alignas(inotify_event) char buf[8192];
    ssize_t len;
    while ((len = read(inotify_fd_, buf, sizeof buf)) > 0) {
      for (char* ptr = buf; ptr < buf + len;) {
        auto* ev = reinterpret_cast<inotify_event*>(ptr);
        if (ev->len > 0) {
          std::string name(ev->name);
          if (name == db_name_ || name == wal_name_) seen = true;
        }
        ptr += sizeof(inotify_event) + ev->len;
      }
    }
  }
  return seen;
}

}  // namespace harmony
