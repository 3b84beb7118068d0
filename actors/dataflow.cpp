#include "actors/dataflow.hpp"

#include <xxhash.h>

namespace meterflow::actors {

std::uint32_t partition_of(std::string_view customer_id, std::uint32_t partitions) {
  return static_cast<std::uint32_t>(XXH3_64bits(customer_id.data(), customer_id.size()) %
                                    partitions);
}

} // namespace meterflow::actors
