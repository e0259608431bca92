// A strict little JSON reader for tests that check a program's JSON output
// (valid JSON, no duplicate keys, valid UTF-8) and read its values.
#pragma once

#include <cctype>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <string>
#include <vector>

namespace droce::test {

// Rejects trailing garbage, duplicate keys, raw control characters in strings
// and invalid escapes; numbers are read as doubles.

struct Json {
  enum class Kind { kNull, kBool, kNumber, kString, kArray, kObject } kind = Kind::kNull;
  bool b = false;
  double num = 0;
  std::string str;
  std::vector<Json> arr;
  std::map<std::string, Json> obj;

  bool has(const std::string& k) const { return kind == Kind::kObject && obj.count(k) != 0; }
  const Json& at(const std::string& k) const {
    static const Json kNull;
    auto it = obj.find(k);
    return it == obj.end() ? kNull : it->second;
  }
  uint64_t u64() const { return uint64_t(num); }
};

class JsonParser {
 public:
  explicit JsonParser(const std::string& s) : s_(s) {}

  // Parses the whole text as one value; returns false with error() on failure.
  bool parse(Json* out) {
    ws();
    if (!value(out, 0)) return false;
    ws();
    if (i_ != s_.size()) return fail("trailing characters");
    return true;
  }
  const std::string& error() const { return error_; }

 private:
  static constexpr int kMaxDepth = 32;

  bool fail(const std::string& why) {
    error_ = why + " at offset " + std::to_string(i_);
    return false;
  }
  void ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool lit(const char* word) {
    const size_t n = std::strlen(word);
    if (s_.compare(i_, n, word) != 0) return fail("bad literal");
    i_ += n;
    return true;
  }
  bool value(Json* v, int depth) {
    if (depth > kMaxDepth) return fail("too deep");
    if (i_ >= s_.size()) return fail("unexpected end");
    const char c = s_[i_];
    if (c == '{') return object(v, depth);
    if (c == '[') return array(v, depth);
    if (c == '"') {
      v->kind = Json::Kind::kString;
      return string(&v->str);
    }
    if (c == 't' || c == 'f') {
      v->kind = Json::Kind::kBool;
      v->b = c == 't';
      return lit(c == 't' ? "true" : "false");
    }
    if (c == 'n') return lit("null");
    return number(v);
  }
  bool number(Json* v) {
    const size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !std::isdigit(uint8_t(s_[i_]))) return fail("bad number");
    if (s_[i_] == '0' && i_ + 1 < s_.size() && std::isdigit(uint8_t(s_[i_ + 1]))) return fail("leading zero");
    while (i_ < s_.size() && std::isdigit(uint8_t(s_[i_]))) ++i_;
    if (i_ < s_.size() && s_[i_] == '.') {
      ++i_;
      if (i_ >= s_.size() || !std::isdigit(uint8_t(s_[i_]))) return fail("bad fraction");
      while (i_ < s_.size() && std::isdigit(uint8_t(s_[i_]))) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !std::isdigit(uint8_t(s_[i_]))) return fail("bad exponent");
      while (i_ < s_.size() && std::isdigit(uint8_t(s_[i_]))) ++i_;
    }
    v->kind = Json::Kind::kNumber;
    v->num = std::strtod(s_.substr(start, i_ - start).c_str(), nullptr);
    return true;
  }
  static void put_utf8(std::string* out, uint32_t cp) {
    if (cp < 0x80) {
      *out += char(cp);
    } else if (cp < 0x800) {
      *out += char(0xC0 | cp >> 6);
      *out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
      *out += char(0xE0 | cp >> 12);
      *out += char(0x80 | (cp >> 6 & 0x3F));
      *out += char(0x80 | (cp & 0x3F));
    } else {
      *out += char(0xF0 | cp >> 18);
      *out += char(0x80 | (cp >> 12 & 0x3F));
      *out += char(0x80 | (cp >> 6 & 0x3F));
      *out += char(0x80 | (cp & 0x3F));
    }
  }
  bool hex4(uint32_t* cp) {
    if (i_ + 4 > s_.size()) return fail("short \\u escape");
    *cp = 0;
    for (int k = 0; k < 4; ++k) {
      const char h = s_[i_++];
      uint32_t d;
      if (h >= '0' && h <= '9') d = uint32_t(h - '0');
      else if (h >= 'a' && h <= 'f') d = uint32_t(h - 'a' + 10);
      else if (h >= 'A' && h <= 'F') d = uint32_t(h - 'A' + 10);
      else return fail("bad hex digit");
      *cp = *cp << 4 | d;
    }
    return true;
  }
  bool string(std::string* out) {
    ++i_;  // opening quote
    while (true) {
      if (i_ >= s_.size()) return fail("unterminated string");
      const char c = s_[i_++];
      if (c == '"') return true;
      if (uint8_t(c) < 0x20) return fail("raw control character in string");
      if (c != '\\') {
        *out += c;
        continue;
      }
      if (i_ >= s_.size()) return fail("unterminated escape");
      const char e = s_[i_++];
      switch (e) {
        case '"': *out += '"'; break;
        case '\\': *out += '\\'; break;
        case '/': *out += '/'; break;
        case 'b': *out += '\b'; break;
        case 'f': *out += '\f'; break;
        case 'n': *out += '\n'; break;
        case 'r': *out += '\r'; break;
        case 't': *out += '\t'; break;
        case 'u': {
          uint32_t cp = 0;
          if (!hex4(&cp)) return false;
          if (cp >= 0xD800 && cp <= 0xDBFF) {
            uint32_t lo = 0;
            if (s_.compare(i_, 2, "\\u") != 0) return fail("lone high surrogate");
            i_ += 2;
            if (!hex4(&lo) || lo < 0xDC00 || lo > 0xDFFF) return fail("bad low surrogate");
            cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
            return fail("lone low surrogate");
          }
          put_utf8(out, cp);
          break;
        }
        default: return fail("bad escape");
      }
    }
  }
  bool array(Json* v, int depth) {
    v->kind = Json::Kind::kArray;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == ']') return ++i_, true;
    while (true) {
      ws();
      v->arr.emplace_back();
      if (!value(&v->arr.back(), depth + 1)) return false;
      ws();
      if (i_ >= s_.size()) return fail("unterminated array");
      if (s_[i_] == ']') return ++i_, true;
      if (s_[i_++] != ',') return fail("expected , in array");
    }
  }
  bool object(Json* v, int depth) {
    v->kind = Json::Kind::kObject;
    ++i_;
    ws();
    if (i_ < s_.size() && s_[i_] == '}') return ++i_, true;
    while (true) {
      ws();
      if (i_ >= s_.size() || s_[i_] != '"') return fail("expected key");
      std::string key;
      if (!string(&key)) return false;
      if (v->obj.count(key) != 0) return fail("duplicate key " + key);
      ws();
      if (i_ >= s_.size() || s_[i_++] != ':') return fail("expected :");
      ws();
      if (!value(&v->obj[key], depth + 1)) return false;
      ws();
      if (i_ >= s_.size()) return fail("unterminated object");
      if (s_[i_] == '}') return ++i_, true;
      if (s_[i_++] != ',') return fail("expected , in object");
    }
  }

  const std::string& s_;
  size_t i_ = 0;
  std::string error_;
};

// True when every byte sequence in s is valid UTF-8 (JSON text must be Unicode).
inline bool valid_utf8(const std::string& s) {
  for (size_t i = 0; i < s.size();) {
    const uint8_t c = uint8_t(s[i]);
    size_t n = c < 0x80 ? 1 : (c >= 0xC2 && c <= 0xDF) ? 2 : (c >= 0xE0 && c <= 0xEF) ? 3
                                                        : (c >= 0xF0 && c <= 0xF4) ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    for (size_t k = 1; k < n; ++k) {
      if ((uint8_t(s[i + k]) & 0xC0) != 0x80) return false;
    }
    i += n;
  }
  return true;
}

}  // namespace droce::test
