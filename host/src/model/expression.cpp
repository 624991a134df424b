// Shape expressions of architecture maps: "num_attention_heads * head_dim" over config.json.
//
// A tiny recursive-descent evaluator. Expressions come from map files a user may write, so
// everything is bounded (length, nesting, default chains) and every integer operation is
// overflow-checked; division must be exact because a shape that only fits after rounding is a
// wrong map or a wrong config, not something to paper over.
#include <cctype>
#include <limits>

#include "model/model_internal.hpp"

namespace qforge::model {
namespace {

using nlohmann::json;

constexpr size_t kMaxExpressionChars = 512;
constexpr int kMaxNesting = 32;       // parentheses and unary minus
constexpr int kMaxDefaultDepth = 16;  // default -> default -> ... chains

using Defaults = std::vector<std::pair<std::string, std::string>>;

// Looks up identifiers during evaluation; null in syntax-only mode.
struct Environment {
  const json* config = nullptr;
  const Defaults* defaults = nullptr;
  std::vector<std::string>* trace = nullptr;
  std::vector<std::string>* identifiers = nullptr;  // collects names (syntax mode)
  std::vector<std::string> active;                  // defaults being evaluated (cycle check)
};

Error expression_error(const std::string& expression, const std::string& why,
                       const std::string& fix) {
  return bad_input("bad shape expression '" + expression + "'", why, fix);
}

class Parser {
 public:
  Parser(const std::string& text, Environment* env) : text_(text), env_(env) {}

  Result<int64_t> parse_all() {
    if (text_.size() > kMaxExpressionChars) {
      return syntax("it is " + std::to_string(text_.size()) + " characters long, the limit is " +
                    std::to_string(kMaxExpressionChars));
    }
    skip_space();
    if (pos_ == text_.size()) return syntax("it is empty");
    auto value = parse_sum();
    if (!value.ok()) return value;
    skip_space();
    if (pos_ != text_.size()) return syntax(unexpected());
    return value;
  }

 private:
  bool evaluating() const { return env_->config != nullptr; }

  Error syntax(const std::string& why) const {
    return expression_error(text_, why,
                            "write integers, config keys, + - * / and parentheses, e.g. "
                            "'num_attention_heads * head_dim'");
  }

  std::string unexpected() const {
    if (pos_ >= text_.size()) return "it ends where an operand is expected";
    return "unexpected '" + std::string(1, text_[pos_]) + "' at character " +
           std::to_string(pos_ + 1);
  }

  void skip_space() {
    while (pos_ < text_.size() && (text_[pos_] == ' ' || text_[pos_] == '\t')) ++pos_;
  }

  Error overflow(const char* op) const {
    return expression_error(text_, std::string("the ") + op + " overflows a 64-bit integer",
                            "check the config values the expression reads");
  }

  Result<int64_t> parse_sum() {
    auto left = parse_product();
    if (!left.ok()) return left;
    int64_t acc = left.value();
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || (text_[pos_] != '+' && text_[pos_] != '-')) return acc;
      const char op = text_[pos_++];
      auto right = parse_product();
      if (!right.ok()) return right;
      const bool bad = op == '+' ? __builtin_add_overflow(acc, right.value(), &acc)
                                 : __builtin_sub_overflow(acc, right.value(), &acc);
      if (bad) return overflow(op == '+' ? "sum" : "difference");
    }
  }

  Result<int64_t> parse_product() {
    auto left = parse_unary();
    if (!left.ok()) return left;
    int64_t acc = left.value();
    for (;;) {
      skip_space();
      if (pos_ >= text_.size() || (text_[pos_] != '*' && text_[pos_] != '/')) return acc;
      const char op = text_[pos_++];
      auto right = parse_unary();
      if (!right.ok()) return right;
      if (!evaluating()) continue;  // syntax mode: identifiers read as 1, no arithmetic checks
      const int64_t r = right.value();
      if (op == '*') {
        if (__builtin_mul_overflow(acc, r, &acc)) return overflow("product");
        continue;
      }
      if (r == 0) {
        return expression_error(text_, "it divides " + std::to_string(acc) + " by zero",
                                "check the config values the expression reads");
      }
      if (acc == std::numeric_limits<int64_t>::min() && r == -1) return overflow("quotient");
      if (acc % r != 0) {
        return expression_error(
            text_,
            std::to_string(acc) + " / " + std::to_string(r) +
                " is not exact (shapes are whole numbers; the remainder is " +
                std::to_string(acc % r) + ")",
            "check the config values the expression reads, or give the derived key "
            "(e.g. head_dim) explicitly in config.json");
      }
      acc /= r;
    }
  }

  Result<int64_t> parse_unary() {
    skip_space();
    if (pos_ < text_.size() && text_[pos_] == '-') {
      ++pos_;
      if (++depth_ > kMaxNesting) return syntax("it nests deeper than 32 levels");
      auto v = parse_unary();
      --depth_;
      if (!v.ok()) return v;
      if (v.value() == std::numeric_limits<int64_t>::min()) return overflow("negation");
      return -v.value();
    }
    return parse_primary();
  }

  Result<int64_t> parse_primary() {
    skip_space();
    if (pos_ >= text_.size()) return syntax(unexpected());
    const char c = text_[pos_];
    if (c == '(') {
      ++pos_;
      if (++depth_ > kMaxNesting) return syntax("it nests deeper than 32 levels");
      auto v = parse_sum();
      --depth_;
      if (!v.ok()) return v;
      skip_space();
      if (pos_ >= text_.size() || text_[pos_] != ')') {
        return syntax("a '(' is not closed" +
                      (pos_ < text_.size() ? " (" + unexpected() + ")" : std::string()));
      }
      ++pos_;
      return v;
    }
    if (std::isdigit(static_cast<unsigned char>(c)) != 0) {
      int64_t v = 0;
      while (pos_ < text_.size() && std::isdigit(static_cast<unsigned char>(text_[pos_])) != 0) {
        if (__builtin_mul_overflow(v, int64_t{10}, &v) ||
            __builtin_add_overflow(v, int64_t{text_[pos_] - '0'}, &v)) {
          return syntax("an integer does not fit in 64 bits");
        }
        ++pos_;
      }
      if (pos_ < text_.size() && (std::isalpha(static_cast<unsigned char>(text_[pos_])) != 0 ||
                                  text_[pos_] == '_' || text_[pos_] == '.')) {
        return syntax(unexpected() + " (only whole numbers and key names are allowed)");
      }
      return v;
    }
    if (std::isalpha(static_cast<unsigned char>(c)) != 0 || c == '_') {
      const size_t start = pos_;
      while (pos_ < text_.size() &&
             (std::isalnum(static_cast<unsigned char>(text_[pos_])) != 0 || text_[pos_] == '_')) {
        ++pos_;
      }
      return identifier(text_.substr(start, pos_ - start));
    }
    return syntax(unexpected());
  }

  void note(const std::string& entry) {
    if (env_->trace == nullptr) return;
    for (const auto& e : *env_->trace) {
      if (e == entry) return;
    }
    env_->trace->push_back(entry);
  }

  Result<int64_t> identifier(const std::string& name) {
    if (!evaluating()) {
      if (env_->identifiers != nullptr) {
        bool seen = false;
        for (const auto& n : *env_->identifiers) seen = seen || n == name;
        if (!seen) env_->identifiers->push_back(name);
      }
      return int64_t{1};
    }
    const json& config = *env_->config;
    auto it = config.is_object() ? config.find(name) : config.end();
    if (it != config.end() && !it->is_null()) {
      const json& v = *it;
      if (v.is_number_integer() &&
          (!v.is_number_unsigned() || v.get<uint64_t>() <= uint64_t{INT64_MAX})) {
        const int64_t value = v.get<int64_t>();
        note(name + "=" + std::to_string(value));
        return value;
      }
      return bad_input("config.json key '" + name + "' is not an integer",
                       "shape expression '" + text_ + "' reads it; it is " + v.dump(),
                       "fix config.json: '" + name + "' must be a whole number");
    }
    for (const auto& [key, expression] : *env_->defaults) {
      if (key != name) continue;
      for (const auto& active : env_->active) {
        if (active == name) {
          return expression_error(text_, "default '" + name + "' depends on itself",
                                  "fix the defaults of the architecture map");
        }
      }
      if (static_cast<int>(env_->active.size()) >= kMaxDefaultDepth) {
        return expression_error(text_, "defaults refer to defaults more than 16 levels deep",
                                "fix the defaults of the architecture map");
      }
      env_->active.push_back(name);
      Parser inner(expression, env_);
      auto value = inner.parse_all();
      env_->active.pop_back();
      if (!value.ok()) {
        const Error& e = value.error();
        return Error(e.code(), e.exit_code(),
                     e.summary() + " (default for '" + name + "', used by '" + text_ + "')",
                     e.why(), e.fix());
      }
      note(name + "=" + std::to_string(value.value()) + " (default: " + expression + ")");
      return value;
    }
    return bad_input(
        "config.json has no key '" + name + "'",
        "shape expression '" + text_ + "' reads it and the architecture map has no default for it",
        "add '" + name + "' to config.json, or a default for it to the architecture map");
  }

  const std::string& text_;
  Environment* env_;
  size_t pos_ = 0;
  int depth_ = 0;
};

}  // namespace

Status check_expression(const std::string& expression) {
  Environment env;
  auto v = Parser(expression, &env).parse_all();
  if (!v.ok()) return v.error();
  return ok_status();
}

Result<std::vector<std::string>> expression_identifiers(const std::string& expression) {
  std::vector<std::string> names;
  Environment env;
  env.identifiers = &names;
  auto v = Parser(expression, &env).parse_all();
  if (!v.ok()) return v.error();
  return names;
}

Result<int64_t> evaluate_expression(const std::string& expression, const nlohmann::json& config,
                                    const Defaults& defaults, std::vector<std::string>* trace) {
  static const json kEmpty = json::object();
  Environment env;
  env.config = config.is_object() ? &config : &kEmpty;
  env.defaults = &defaults;
  env.trace = trace;
  return Parser(expression, &env).parse_all();
}

}  // namespace qforge::model

namespace qforge {

Result<int64_t> evaluate_dimension(const std::string& expression, const nlohmann::json& config,
                                   const ArchitectureMap& map) {
  return model::evaluate_expression(expression, config, map.defaults);
}

}  // namespace qforge
