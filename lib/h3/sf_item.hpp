#pragma once

// Structured-field helpers for the protocol negotiation headers
// (draft-ietf-webtrans-http3 section 3.3; RFC 8941).

#include <optional>
#include <string>
#include <string_view>

namespace uvwt::detail {

// The String an sf-item holds ("abc"; parameters after it are ignored), or
// nullopt when the item is not a String (a token, a number, a list of
// several items, a broken string): such a field is ignored or refused.
inline std::optional<std::string> parse_sf_string_item(std::string_view v) {
  std::size_t i = 0;
  while (i < v.size() && v[i] == ' ') ++i;
  if (i >= v.size() || v[i] != '"') return std::nullopt;
  std::string out;
  for (++i; i < v.size(); ++i) {
    const char c = v[i];
    if (c == '\\') {
      if (++i >= v.size() || (v[i] != '"' && v[i] != '\\')) return std::nullopt;
      out.push_back(v[i]);
    } else if (c == '"') {
      break;
    } else if (c < 0x20 || c > 0x7e) {
      return std::nullopt;
    } else {
      out.push_back(c);
    }
  }
  if (i >= v.size()) return std::nullopt;  // no closing quote
  ++i;
  // Only parameters may follow an item; a ',' makes it a list.
  while (i < v.size() && v[i] == ' ') ++i;
  if (i < v.size() && v[i] != ';') return std::nullopt;
  return out;
}

}  // namespace uvwt::detail
