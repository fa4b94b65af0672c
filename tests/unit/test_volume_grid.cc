// Volume grid cell names (the pure part; reading is tested through real mounts in
// tests/integration/test_volume_grid.py).
#include <catch2/catch.hpp>

#include "core/source/volume_grid.h"

namespace oz {

TEST_CASE("ParseGridCellName: cell_yxz_Y_X_Z.tif, 1-based, any case of the extension") {
  auto c = ParseGridCellName("cell_yxz_001_002_010.tif");
  REQUIRE(c);
  CHECK(c->y == 1);
  CHECK(c->x == 2);
  CHECK(c->z == 10);
  auto d = ParseGridCellName("CELL_YXZ_7_18_123.TIFF");
  REQUIRE(d);
  CHECK(d->y == 7);
  CHECK(d->x == 18);
  CHECK(d->z == 123);
  for (const char* bad :
       {"cell_yxz_000_001_001.tif", "cell_yxz_001_001.tif", "cell_yxz_001_001_001_001.tif", "cell_yxz_001_0a1_001.tif",
        "cell_yxz_001_001_001.png", "cell_yxz_001__001_001.tif", "cell_xyz_001_001_001.tif", "cell_yxz_001_001_001",
        "cell_yxz_.tif", "cell_yxz_1_1_99999999999.tif", "0001.tif"})
    CHECK_FALSE(ParseGridCellName(bad));
}

}  // namespace oz
