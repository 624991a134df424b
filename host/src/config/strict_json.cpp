#include "config/strict_json.hpp"

#include <cstddef>
#include <iterator>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/yaml_json.hpp"

namespace qforge {
namespace {

using nlohmann::json;

// An input iterator that records the furthest byte nlohmann's lexer has read, so a parser
// callback can tell on which line the current key ended. nlohmann copies iterators, hence the
// shared pointer to the high-water mark.
class TrackingIterator {
 public:
  using iterator_category = std::input_iterator_tag;
  using value_type = char;
  using difference_type = std::ptrdiff_t;
  using pointer = const char*;
  using reference = const char&;

  TrackingIterator(const char* p, const char** furthest) : p_(p), furthest_(furthest) {}
  reference operator*() const { return *p_; }
  TrackingIterator& operator++() {
    ++p_;
    if (p_ > *furthest_) *furthest_ = p_;
    return *this;
  }
  TrackingIterator operator++(int) {
    TrackingIterator old = *this;
    ++*this;
    return old;
  }
  bool operator==(const TrackingIterator& other) const { return p_ == other.p_; }
  bool operator!=(const TrackingIterator& other) const { return p_ != other.p_; }

 private:
  const char* p_;
  const char** furthest_;
};

struct Failure {
  std::string key;
  std::string problem;
  std::string why;
  std::string fix;
};

struct Frame {
  bool is_object = false;
  std::string path;
  std::string key;
  std::size_t next_index = 0;
  std::set<std::string> keys;
};

std::pair<int, int> line_column(const std::string& text, std::size_t offset) {
  if (offset > text.size()) offset = text.size();
  int line = 1;
  std::size_t line_start = 0;
  for (std::size_t i = 0; i < offset; ++i) {
    if (text[i] == '\n') {
      ++line;
      line_start = i + 1;
    }
  }
  return {line, static_cast<int>(offset - line_start) + 1};
}

// Path of the value about to start inside `stack.back()` (advancing array indices).
std::string next_child_path(std::vector<Frame>& stack) {
  if (stack.empty()) return "";
  Frame& top = stack.back();
  if (top.is_object) return yaml_join_key(top.path, top.key);
  return top.path + "[" + std::to_string(top.next_index++) + "]";
}

}  // namespace

Result<json> parse_strict_json(const std::string& text, const std::string& source,
                               std::size_t max_depth) {
  const char* begin = text.data();
  const char* furthest = begin;
  std::vector<Frame> stack;
  auto callback = [&](int /*depth*/, json::parse_event_t event, json& parsed) -> bool {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start: {
        Frame frame;
        frame.is_object = event == json::parse_event_t::object_start;
        frame.path = next_child_path(stack);
        if (stack.size() + 1 > max_depth) {
          throw Failure{frame.path, "nesting deeper than " + std::to_string(max_depth) + " levels",
                        "deep nesting is refused to bound memory and recursion",
                        "flatten the structure"};
        }
        stack.push_back(std::move(frame));
        break;
      }
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        stack.pop_back();
        break;
      case json::parse_event_t::key: {
        Frame& top = stack.back();
        const std::string key = parsed.get<std::string>();
        if (!top.keys.insert(key).second) {
          throw Failure{yaml_join_key(top.path, key), "duplicate key '" + key + "'",
                        "the key appears twice in the same object; plain JSON readers would "
                        "silently keep only the last value",
                        "keep one of the two entries"};
        }
        top.key = key;
        break;
      }
      case json::parse_event_t::value:
        if (!stack.empty() && !stack.back().is_object) ++stack.back().next_index;
        break;
    }
    return true;
  };
  try {
    return json::parse(TrackingIterator(begin, &furthest),
                       TrackingIterator(begin + text.size(), &furthest), callback,
                       /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const Failure& f) {
    const auto [line, column] = line_column(text, static_cast<std::size_t>(furthest - begin));
    return bad_input(source + ":" + std::to_string(line) + ":" + std::to_string(column) +
                         ": key '" + f.key + "': " + f.problem,
                     f.why, f.fix);
  } catch (const json::parse_error& e) {
    // e.byte is 1-based: the offset just past the character that failed.
    const std::size_t offset = e.byte > 0 ? e.byte - 1 : 0;
    const auto [line, column] = line_column(text, offset);
    std::string why = e.what();
    const std::size_t syntax = why.find("syntax error");
    if (syntax != std::string::npos) why = why.substr(syntax);
    return bad_input(
        source + ":" + std::to_string(line) + ":" + std::to_string(column) + ": malformed JSON",
        why, "fix the syntax at the position shown");
  }
}

}  // namespace qforge
