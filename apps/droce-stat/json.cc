// JSON reader and writer for droce-stat (json.h).
#include "apps/droce-stat/json.h"

#include <cstdio>
#include <cstdlib>

namespace droce::stat {

const Json* Json::find(const std::string& key) const {
  for (const auto& [k, v] : obj) {
    if (k == key) return &v;
  }
  return nullptr;
}

uint64_t Json::u64(const std::string& key) const {
  const Json* v = find(key);
  if (v == nullptr || v->kind != Kind::kNumber) return 0;
  return std::strtoull(v->num.c_str(), nullptr, 10);
}

std::string Json::string_at(const std::string& key) const {
  const Json* v = find(key);
  return v != nullptr && v->kind == Kind::kString ? v->str : std::string();
}

void Json::set(const std::string& key, Json v) {
  for (auto& [k, old] : obj) {
    if (k == key) {
      old = std::move(v);
      return;
    }
  }
  obj.emplace_back(key, std::move(v));
}

namespace {

class Parser {
 public:
  explicit Parser(const std::string& s) : s_(s) {}

  bool parse(Json* out, std::string* error) {
    ws();
    bool ok = value(out, 0);
    if (ok) {
      ws();
      if (i_ != s_.size()) ok = fail("trailing characters");
    }
    if (!ok && error != nullptr) *error = error_ + " at offset " + std::to_string(i_);
    return ok;
  }

 private:
  static constexpr int kMaxDepth = 64;

  bool fail(const char* why) {
    if (error_.empty()) error_ = why;
    return false;
  }
  void ws() {
    while (i_ < s_.size() &&
           (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) {
      ++i_;
    }
  }
  bool literal(const char* word) {
    size_t n = 0;
    while (word[n] != '\0') ++n;
    if (s_.compare(i_, n, word) != 0) return fail("bad literal");
    i_ += n;
    return true;
  }
  bool value(Json* out, int depth) {
    if (depth > kMaxDepth) return fail("nested too deeply");
    if (i_ >= s_.size()) return fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') return object(out, depth);
    if (c == '[') return array(out, depth);
    if (c == '"') {
      out->kind = Json::Kind::kString;
      return string(&out->str);
    }
    if (c == 't' || c == 'f') {
      out->kind = Json::Kind::kBool;
      out->b = c == 't';
      return literal(c == 't' ? "true" : "false");
    }
    if (c == 'n') {
      out->kind = Json::Kind::kNull;
      return literal("null");
    }
    return number(out);
  }
  bool number(Json* out) {
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    size_t digits = 0;
    while (i_ < s_.size() && ((s_[i_] >= '0' && s_[i_] <= '9') || s_[i_] == '.' || s_[i_] == 'e' ||
                              s_[i_] == 'E' || s_[i_] == '+' || s_[i_] == '-')) {
      ++i_;
      ++digits;
    }
    if (digits == 0) return fail("bad value");
    out->kind = Json::Kind::kNumber;
    out->num = s_.substr(start, i_ - start);
    return true;
  }
  bool string(std::string* out) {
    ++i_;  // opening quote
    while (i_ < s_.size()) {
      const char c = s_[i_++];
      if (c == '"') return true;
      if (static_cast<unsigned char>(c) < 0x20) return fail("control character in string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) break;
      const char e = s_[i_++];
      switch (e) {
        case '"':
          *out += '"';
          break;
        case '\\':
          *out += '\\';
          break;
        case '/':
          *out += '/';
          break;
        case 'b':
          *out += '\b';
          break;
        case 'f':
          *out += '\f';
          break;
        case 'n':
          *out += '\n';
          break;
        case 'r':
          *out += '\r';
          break;
        case 't':
          *out += '\t';
          break;
        case 'u': {
          if (i_ + 4 > s_.size()) return fail("bad \\u escape");
          const unsigned cp = unsigned(std::strtoul(s_.substr(i_, 4).c_str(), nullptr, 16));
          i_ += 4;
          // Telemetry strings are ASCII; anything else is kept as UTF-8 of the BMP code point.
          if (cp < 0x80) {
            *out += char(cp);
          } else if (cp < 0x800) {
            *out += char(0xC0 | (cp >> 6));
            *out += char(0x80 | (cp & 0x3F));
          } else {
            *out += char(0xE0 | (cp >> 12));
            *out += char(0x80 | ((cp >> 6) & 0x3F));
            *out += char(0x80 | (cp & 0x3F));
          }
          break;
        }
        default:
          return fail("bad escape");
      }
    }
    return fail("unterminated string");
  }
  bool array(Json* out, int depth) {
    out->kind = Json::Kind::kArray;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') {
      ++i_;
      return true;
    }
    while (true) {
      ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->arr.push_back(std::move(v));
      ws();
      if (i_ >= s_.size()) return fail("unterminated array");
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == ']') {
        ++i_;
        return true;
      }
      return fail("expected , or ]");
    }
  }
  bool object(Json* out, int depth) {
    out->kind = Json::Kind::kObject;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') {
      ++i_;
      return true;
    }
    while (true) {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"') return fail("expected a key");
      std::string key;
      if (!string(&key)) return false;
      ws();
      if (i_ >= s_.size() || s_[i_] != ':') return fail("expected :");
      ++i_;
      ws();
      Json v;
      if (!value(&v, depth + 1)) return false;
      out->obj.emplace_back(std::move(key), std::move(v));
      ws();
      if (i_ >= s_.size()) return fail("unterminated object");
      if (s_[i_] == ',') {
        ++i_;
        continue;
      }
      if (s_[i_] == '}') {
        ++i_;
        return true;
      }
      return fail("expected , or }");
    }
  }

  const std::string& s_;
  size_t i_ = 0;
  std::string error_;
};

void quote(const std::string& s, std::string* out) {
  *out += '"';
  for (const char c : s) {
    switch (c) {
      case '"':
        *out += "\\\"";
        break;
      case '\\':
        *out += "\\\\";
        break;
      case '\n':
        *out += "\\n";
        break;
      case '\r':
        *out += "\\r";
        break;
      case '\t':
        *out += "\\t";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          char buf[8];
          std::snprintf(buf, sizeof(buf), "\\u%04x", unsigned(c));
          *out += buf;
        } else {
          *out += c;
        }
    }
  }
  *out += '"';
}

void write(const Json& v, int indent, int level, std::string* out) {
  const auto newline = [&](int lvl) {
    if (indent < 0) return;
    *out += '\n';
    out->append(size_t(indent * lvl), ' ');
  };
  switch (v.kind) {
    case Json::Kind::kNull:
      *out += "null";
      return;
    case Json::Kind::kBool:
      *out += v.b ? "true" : "false";
      return;
    case Json::Kind::kNumber:
      *out += v.num;
      return;
    case Json::Kind::kString:
      quote(v.str, out);
      return;
    case Json::Kind::kArray:
      *out += '[';
      for (size_t i = 0; i < v.arr.size(); ++i) {
        if (i > 0) *out += indent < 0 ? ", " : ",";
        if (indent >= 0) newline(level + 1);
        write(v.arr[i], indent, level + 1, out);
      }
      if (!v.arr.empty()) newline(level);
      *out += ']';
      return;
    case Json::Kind::kObject:
      *out += '{';
      for (size_t i = 0; i < v.obj.size(); ++i) {
        if (i > 0) *out += indent < 0 ? ", " : ",";
        if (indent >= 0) newline(level + 1);
        quote(v.obj[i].first, out);
        *out += ": ";
        write(v.obj[i].second, indent, level + 1, out);
      }
      if (!v.obj.empty()) newline(level);
      *out += '}';
      return;
  }
}

}  // namespace

bool parse_json(const std::string& text, Json* out, std::string* error) {
  *out = Json();
  return Parser(text).parse(out, error);
}

std::string to_json(const Json& v, int indent) {
  std::string out;
  write(v, indent, 0, &out);
  return out;
}

}  // namespace droce::stat
