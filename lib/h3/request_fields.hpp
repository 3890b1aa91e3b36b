#pragma once

// Reading and writing the fields of HTTP/3 requests and responses for
// nghttp3: header name/value views, :status, structured-field strings
// (RFC 8941 3.3.3) as wt-protocol and wt-available-protocols carry them.

#include <nghttp3/nghttp3.h>

#include <string>
#include <string_view>
#include <vector>

namespace uvwt::detail {

inline std::string_view rcbuf_view(nghttp3_rcbuf *b) {
  const nghttp3_vec v = nghttp3_rcbuf_get_buf(b);
  return {reinterpret_cast<const char *>(v.base), v.len};
}

inline nghttp3_nv make_nv(std::string_view name, std::string_view value) {
  nghttp3_nv nv{};
  nv.name = reinterpret_cast<const std::uint8_t *>(name.data());
  nv.namelen = name.size();
  nv.value = reinterpret_cast<const std::uint8_t *>(value.data());
  nv.valuelen = value.size();
  nv.flags = NGHTTP3_NV_FLAG_NONE;
  return nv;
}

// wt-available-protocols is a structured-field list of strings: "a", "b".
inline std::vector<std::string> parse_sf_string_list(std::string_view v) {
  std::vector<std::string> out;
  std::size_t i = 0;
  while (i < v.size()) {
    while (i < v.size() && (v[i] == ' ' || v[i] == ',' || v[i] == '\t')) ++i;
    if (i >= v.size()) break;
    if (v[i] != '"') {  // not a string item: skip to the next comma
      while (i < v.size() && v[i] != ',') ++i;
      continue;
    }
    ++i;
    std::string item;
    while (i < v.size() && v[i] != '"') {
      if (v[i] == '\\' && i + 1 < v.size()) ++i;
      item.push_back(v[i++]);
    }
    ++i;
    while (i < v.size() && v[i] != ',') ++i;  // parameters are ignored
    out.push_back(std::move(item));
  }
  return out;
}

// ":status" is exactly three digits; anything else is not a status (0).
inline int parse_status(std::string_view v) {
  if (v.size() != 3) return 0;
  int n = 0;
  for (char c : v) {
    if (c < '0' || c > '9') return 0;
    n = n * 10 + (c - '0');
  }
  return n;
}

inline std::string sf_string(std::string_view s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out.push_back('\\');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace uvwt::detail
