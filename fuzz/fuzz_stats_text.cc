// Fuzzes the stats text parser behind `omezarrfs status` (ParseStatsText, FormatStatusReport): any
// bytes (an xattr read from any path), no crash, no UB; every parsed pair is formatted again.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/base/stats.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string in(reinterpret_cast<const char*>(data), size);
  const auto values = oz::ParseStatsText(in);
  std::string again;
  for (const auto& [name, value] : values) again += name + " " + std::to_string(value) + "\n";
  if (oz::ParseStatsText(again) != values) __builtin_trap();  // a parsed list round-trips
  (void)oz::FormatStatusReport("/mnt", in);
  return 0;
}
