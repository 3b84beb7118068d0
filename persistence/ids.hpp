#pragma once

// Content-derived ids (SEMANTICS §1, §11): hex SHA-256 of a canonical key whose parts are
// joined with the unit separator 0x1F, which no id or RFC 3339 time can contain.

#include <initializer_list>
#include <string>
#include <string_view>

namespace meterflow::persistence {

std::string content_id(std::initializer_list<std::string_view> parts);

} // namespace meterflow::persistence
