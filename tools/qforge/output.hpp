// Where the CLI's own output goes, and how errors are reported.
//
// stdout discipline: with --json, stdout carries exactly one JSON document and nothing else.
// Our own logs go to stderr (spdlog), but a plugin is foreign code that may printf; an embedder
// cannot stop that, a CLI can. So before anything else runs, main() moves the real stdout to a
// private descriptor and points fd 1 at stderr (contain_stdout). Every stray write to fd 1 then
// lands on stderr, and only Output writes to the real stdout.
#pragma once

#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "qforge/error.hpp"

namespace qforge::cli {

// Duplicates fd 1 to a private close-on-exec descriptor, redirects fd 1 to fd 2, and returns a
// stream on the private descriptor. Falls back to stdout itself (returned as is) when the
// descriptors cannot be duplicated, so the CLI still works, only without containment.
std::FILE* contain_stdout() noexcept;

class Output {
 public:
  explicit Output(std::FILE* out) : out_(out) {}
  Output(const Output&) = delete;
  Output& operator=(const Output&) = delete;

  void set_json(bool json) { json_ = json; }
  bool json() const { return json_; }

  // Writes text to the real stdout and flushes.
  void text(const std::string& s);
  // Writes one JSON document (pretty, newline-terminated). Invalid UTF-8 from plugins is
  // replaced rather than thrown on, so a report is never lost to one bad byte.
  void json_document(const nlohmann::json& doc);
  // Reports an error: what/why/fix on stderr, plus {"error": {...}} on stdout in JSON mode when
  // no document was written yet (stdout still holds exactly one document).
  void error(const Error& e);

 private:
  std::FILE* out_;
  bool json_ = false;
  bool document_written_ = false;
};

// JSON dump that never throws on invalid UTF-8.
std::string dump_json(const nlohmann::json& j, int indent = 2);

// "1.5 GiB", "512 MiB", "0 B".
std::string format_bytes(uint64_t bytes);

}  // namespace qforge::cli
