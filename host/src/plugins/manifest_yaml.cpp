#include "plugins/manifest_yaml.hpp"

#include <yaml-cpp/eventhandler.h>
#include <yaml-cpp/exceptions.h>
#include <yaml-cpp/mark.h>
#include <yaml-cpp/parser.h>

#include <cstdint>
#include <cstdio>
#include <new>
#include <sstream>
#include <unordered_map>
#include <utility>

namespace qforge::plugins {
namespace {

// Thrown by the event handler to stop yaml-cpp mid-stream; caught in parse_strict_yaml only.
struct StrictYamlError {
  std::string path;  // dotted field path, "" for the document itself
  int line;
  int column;
  std::string problem;
  std::string why;
  std::string fix;
};

std::string join_path(const std::string& parent, const std::string& key) {
  return parent.empty() ? key : parent + "." + key;
}

std::string position(int line, int column) {
  if (line <= 0) return "";
  return "line " + std::to_string(line) + ", column " + std::to_string(column);
}

std::string field_what(const std::string& source, const std::string& path,
                       const std::string& problem) {
  if (path.empty()) return source + ": " + problem;
  // Deeply nested junk makes paths like "x[0][0][0]..."; the start locates it well enough.
  constexpr std::size_t kMaxShownPath = 120;
  const std::string shown =
      path.size() <= kMaxShownPath ? path : path.substr(0, kMaxShownPath) + "...";
  return source + ": field '" + shown + "': " + problem;
}

// Escapes what a terminal or log must not receive raw; keeps printable ASCII.
std::string escape_for_message(const std::string& text, std::size_t max_len) {
  std::string out;
  for (std::size_t i = 0; i < text.size(); ++i) {
    if (out.size() >= max_len) {
      out += "...";
      break;
    }
    const auto c = static_cast<unsigned char>(text[i]);
    if (c == '\n') {
      out += "\\n";
    } else if (c == '\t') {
      out += "\\t";
    } else if (c < 0x20 || c >= 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out;
}

// A byte YAML forbids in a stream (C0 controls other than tab/LF/CR, and DEL).
bool is_forbidden_control(unsigned char c) {
  return (c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7f;
}

// 1-based line and column of byte `offset` in `text`.
std::pair<int, int> line_column_at(const std::string& text, std::size_t offset) {
  int line = 1;
  int column = 1;
  for (std::size_t i = 0; i < offset && i < text.size(); ++i) {
    if (text[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  return {line, column};
}

class TreeBuilder : public YAML::EventHandler {
 public:
  YamlNode take_root() { return std::move(root_); }
  bool has_root() const noexcept { return has_root_; }

  void OnDocumentStart(const YAML::Mark& mark) override {
    if (documents_++ > 0) {
      fail("", mark, "more than one YAML document",
           "found a second document (a '---' line after content); a manifest is one document",
           "remove the second document or split it into its own manifest file");
    }
  }
  void OnDocumentEnd() override {}

  void OnNull(const YAML::Mark& mark, YAML::anchor_t anchor) override {
    check_anchor(mark, anchor);
    YamlNode node;
    node.kind = YamlNode::Kind::kNull;
    set_mark(&node, mark);
    add(std::move(node), mark);
  }

  void OnAlias(const YAML::Mark& mark, YAML::anchor_t /*anchor*/) override {
    fail(next_child_path(), mark, "YAML aliases ('*name') are not allowed",
         "found an alias; aliases let a tiny file expand into a huge tree (\"billion laughs\")",
         "write the value out in full instead of referring to an anchor");
  }

  void OnAnchor(const YAML::Mark& mark, const std::string& /*anchor_name*/) override {
    fail_anchor(mark);
  }

  void OnScalar(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                const std::string& value) override {
    check_anchor(mark, anchor);
    // yaml-cpp reports "?" for plain scalars and "!" for quoted/block ones; anything else was
    // written by the author.
    if (tag != "?" && tag != "!") fail_tag(mark, tag);
    check_scalar_text(mark, value);
    YamlNode node;
    node.kind = YamlNode::Kind::kScalar;
    node.value = value;
    node.plain = (tag == "?");
    set_mark(&node, mark);
    add(std::move(node), mark);
  }

  void OnSequenceStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                       YAML::EmitterStyle::value /*style*/) override {
    open(mark, tag, anchor, YamlNode::Kind::kSequence);
  }
  void OnSequenceEnd() override {
    if (!stack_.empty()) stack_.pop_back();
  }

  void OnMapStart(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
                  YAML::EmitterStyle::value /*style*/) override {
    open(mark, tag, anchor, YamlNode::Kind::kMap);
  }
  void OnMapEnd() override {
    if (stack_.empty()) return;
    const Frame& frame = stack_.back();
    if (frame.node->keys.size() != frame.node->values.size()) {
      fail(frame.path, YAML::Mark::null_mark(), "mapping ends with a key that has no value",
           "the YAML parser delivered an odd number of mapping entries", "give every key a value");
    }
    stack_.pop_back();
  }

 private:
  struct Frame {
    YamlNode* node;
    std::string path;
    // Key -> index in node->keys: a hash lookup keeps a 1 MiB map of distinct keys linear.
    std::unordered_map<std::string, std::size_t> key_index;
  };

  [[noreturn]] static void fail(std::string path, const YAML::Mark& mark, std::string problem,
                                std::string why, std::string fix) {
    const bool known = !mark.is_null();
    throw StrictYamlError{std::move(path),
                          known ? mark.line + 1 : 0,
                          known ? mark.column + 1 : 0,
                          std::move(problem),
                          std::move(why),
                          std::move(fix)};
  }

  static void set_mark(YamlNode* node, const YAML::Mark& mark) {
    if (mark.is_null()) return;
    node->line = mark.line + 1;
    node->column = mark.column + 1;
  }

  [[noreturn]] void fail_anchor(const YAML::Mark& mark) {
    fail(next_child_path(), mark, "YAML anchors ('&name') are not allowed",
         "found an anchor; anchors and aliases let a tiny file expand into a huge tree "
         "(\"billion laughs\")",
         "remove the '&name' anchor and write every value out in full");
  }

  [[noreturn]] void fail_tag(const YAML::Mark& mark, const std::string& tag) {
    fail(next_child_path(), mark, "explicit YAML tags are not allowed",
         "found tag " + quote_for_message(tag) +
             "; a manifest's types follow from its schema, and tags can select unsafe "
             "constructors in other YAML readers",
         "remove the tag ('!!type' or '!name') and write the plain value");
  }

  void check_anchor(const YAML::Mark& mark, YAML::anchor_t anchor) {
    if (anchor != YAML::NullAnchor) fail_anchor(mark);
  }

  void check_scalar_text(const YAML::Mark& mark, const std::string& value) {
    // Escapes such as "\x01" or "\ud800" in double-quoted strings produce bytes the raw-text
    // check never saw.
    std::size_t bad = 0;
    if (!is_valid_utf8(value, &bad)) {
      fail(next_child_path(), mark, "string is not valid UTF-8",
           "byte " + std::to_string(bad) + " of the value " + quote_for_message(value) +
               " does not continue a UTF-8 sequence (an escape such as \"\\ud800\" can cause "
               "this)",
           "write the text as plain UTF-8");
    }
    for (char ch : value) {
      if (ch == '\0' || is_forbidden_control(static_cast<unsigned char>(ch))) {
        fail(next_child_path(), mark, "string contains a control character",
             "the value " + quote_for_message(value) +
                 " contains a control character (allowed: tab, newline, carriage return)",
             "remove the control character or escape sequence");
      }
    }
  }

  // The path the next node added to the current parent will have.
  std::string next_child_path() const {
    if (stack_.empty()) return "";
    const Frame& frame = stack_.back();
    const YamlNode& parent = *frame.node;
    if (parent.is_sequence()) {
      return frame.path + "[" + std::to_string(parent.items.size()) + "]";
    }
    if (parent.keys.size() > parent.values.size()) {
      return join_path(frame.path, escape_for_message(parent.keys.back().value, 60));
    }
    return frame.path;  // a key: errors about it belong to the mapping
  }

  void open(const YAML::Mark& mark, const std::string& tag, YAML::anchor_t anchor,
            YamlNode::Kind kind) {
    check_anchor(mark, anchor);
    if (tag != "?") fail_tag(mark, tag);
    if (stack_.size() >= kYamlMaxDepth) {
      fail(next_child_path(), mark, "nesting is too deep",
           "mappings and lists nest more than " + std::to_string(kYamlMaxDepth) +
               " levels; a manifest needs about 6",
           "flatten the structure");
    }
    YamlNode node;
    node.kind = kind;
    set_mark(&node, mark);
    std::string path = next_child_path();
    YamlNode* added = add(std::move(node), mark);
    // `added` stays valid while it is open: its parent's vectors only grow after it is closed.
    stack_.push_back(Frame{added, std::move(path), {}});
  }

  YamlNode* add(YamlNode node, const YAML::Mark& mark) {
    if (stack_.empty()) {
      root_ = std::move(node);
      has_root_ = true;
      return &root_;
    }
    Frame& frame = stack_.back();
    YamlNode& parent = *frame.node;
    if (parent.is_sequence()) {
      parent.items.push_back(std::move(node));
      return &parent.items.back();
    }
    if (parent.keys.size() > parent.values.size()) {
      parent.values.push_back(std::move(node));
      return &parent.values.back();
    }
    // A key.
    if (!node.is_scalar()) {
      fail(frame.path, mark, "mapping keys must be plain strings",
           std::string("found a key that is ") + (node.is_null()  ? "empty/null"
                                                  : node.is_map() ? "a mapping"
                                                                  : "a list"),
           "write keys as simple words, e.g. 'priority: 100'");
    }
    const auto [it, inserted] = frame.key_index.emplace(node.value, parent.keys.size());
    if (!inserted) {
      const YamlNode& seen = parent.keys[it->second];
      fail(join_path(frame.path, escape_for_message(node.value, 60)), mark, "duplicate key",
           "key " + quote_for_message(node.value) + " was already given at " +
               position(seen.line, seen.column) +
               "; YAML readers silently keep only one of the two",
           "remove one of the two entries");
    }
    parent.keys.push_back(std::move(node));
    return &parent.keys.back();
  }

  YamlNode root_;
  bool has_root_ = false;
  int documents_ = 0;
  std::vector<Frame> stack_;
};

}  // namespace

std::string YamlNode::where() const { return position(line, column); }

std::string quote_for_message(const std::string& text, std::size_t max_len) {
  return "'" + escape_for_message(text, max_len) + "'";
}

bool is_valid_utf8(const std::string& text, std::size_t* bad_offset) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const std::size_t n = text.size();
  std::size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    std::size_t len = 0;
    uint32_t cp = 0;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2;
      cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3;
      cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4;
      cp = c & 0x07;
    } else {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    if (i + len > n) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    for (std::size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) {
        if (bad_offset) *bad_offset = i + k;
        return false;
      }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    const bool overlong =
        (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
      if (bad_offset) *bad_offset = i;
      return false;
    }
    i += len;
  }
  return true;
}

Result<YamlNode> parse_strict_yaml(const std::string& text, const std::string& source) {
  // Raw-text checks first: they give exact positions and keep odd bytes away from the scanner.
  std::size_t bad = 0;
  if (!is_valid_utf8(text, &bad)) {
    const auto [line, column] = line_column_at(text, bad);
    return bad_input(source + ": not valid UTF-8 at " + position(line, column),
                     "byte offset " + std::to_string(bad) +
                         " does not start or continue a UTF-8 sequence; manifests are UTF-8 text",
                     "save the file as UTF-8 (no UTF-16, no Latin-1)");
  }
  for (std::size_t i = 0; i < text.size(); ++i) {
    const auto c = static_cast<unsigned char>(text[i]);
    if (is_forbidden_control(c)) {
      const auto [line, column] = line_column_at(text, i);
      char code[8];
      std::snprintf(code, sizeof(code), "0x%02x", c);
      return bad_input(source + ": control character " + code + " at " + position(line, column),
                       "YAML text may contain only tab, newline and carriage return among the "
                       "control characters; found byte " +
                           std::string(code),
                       "remove the control character (is this a binary file?)");
    }
  }

  try {
    std::istringstream in(text);
    YAML::Parser parser(in);
    TreeBuilder builder;
    if (parser.HandleNextDocument(builder)) {
      // A second call detects a second document (the builder throws on it).
      while (parser.HandleNextDocument(builder)) {
      }
    }
    if (!builder.has_root()) {
      return bad_input(source + ": the manifest is empty",
                       "the file holds no YAML document (only whitespace or comments)",
                       "write the manifest fields; see docs/manifest.md");
    }
    return builder.take_root();
  } catch (const StrictYamlError& e) {
    std::string why = e.why;
    if (e.line > 0) why = "at " + position(e.line, e.column) + ": " + why;
    return bad_input(field_what(source, e.path, e.problem), why, e.fix);
  } catch (const YAML::Exception& e) {
    const bool known = !e.mark.is_null();
    const std::string at = known ? position(e.mark.line + 1, e.mark.column + 1) : "";
    return bad_input(
        source + ": malformed YAML" + (known ? " at " + at : std::string()) + ": " + e.msg,
        "the YAML parser stopped" + (known ? " at " + at : std::string()) + ": " + e.msg,
        "fix the YAML syntax there (indentation, a missing ':' or closing bracket, unbalanced "
        "quotes); a YAML linter shows the exact spot");
  } catch (const std::bad_alloc&) {
    return Error(ErrorCode::kResourceExhausted, ExitCode::kBadInput,
                 source + ": out of memory while parsing the manifest",
                 "the YAML parser could not allocate memory",
                 "check that the file is a real manifest (a few KiB)");
  } catch (const std::exception& e) {
    return bad_input(source + ": the manifest could not be parsed",
                     std::string("the YAML parser failed: ") + e.what(),
                     "check the file is a YAML manifest; see docs/manifest.md");
  }
}

}  // namespace qforge::plugins
