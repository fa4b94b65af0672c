// The -o option and command-line parser: every option, its defaults, errors and comma forms.
#include <catch2/catch.hpp>
#include <string>
#include <vector>

#include "mountopts/mount_options.h"

namespace oz {
namespace {

struct Parsed {
  Status status;
  Options options;
  MountFlags flags;
};

Parsed Parse(const std::string& o) {
  Parsed p;
  p.status = ParseOptionString(o, &p.options, &p.flags);
  return p;
}

Options ParseOk(const std::string& o) {
  Parsed p = Parse(o);
  INFO("-o " << o << " -> " << p.status.ToString());
  REQUIRE(p.status.ok());
  return p.options;
}

MountFlags FlagsOk(const std::string& o) {
  Parsed p = Parse(o);
  INFO("-o " << o << " -> " << p.status.ToString());
  REQUIRE(p.status.ok());
  return p.flags;
}

// The error message for `-o o`; fails the test if parsing succeeds or the code is not
// kInvalidArgument.
std::string ParseError(const std::string& o) {
  Parsed p = Parse(o);
  INFO("-o " << o);
  REQUIRE_FALSE(p.status.ok());
  CHECK(p.status.code() == ErrorCode::kInvalidArgument);
  return p.status.message();
}

bool Contains(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

Result<CommandLine> Cmd(std::vector<std::string> args) {
  args.insert(args.begin(), "omezarrfs");
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());
  argv.push_back(nullptr);
  return ParseCommandLine(static_cast<int>(args.size()), argv.data());
}

SliceRange S(std::optional<int64_t> a, std::optional<int64_t> b) { return SliceRange{a, b}; }

TEST_CASE("mount options: an empty option string keeps every default") {
  Options o = ParseOk("");
  CHECK(o == Options{});
  CHECK(o.chunk == 128);
  CHECK(o.levels == 6);
  CHECK(o.algorithm == Algorithm::kMean);
  CHECK(o.window == std::array<SliceRange, 3>{});
  CHECK(o.shift == std::array<int64_t, 3>{0, 0, 0});
  CHECK(o.voxel_size == std::array<double, 3>{1.0, 1.0, 1.0});
  CHECK(o.unit.empty());
  CHECK_FALSE(o.bytes1);
  CHECK(o.compression == Compression::kNone);
  CHECK(o.blosc_cname == "lz4");
  CHECK(o.blosc_clevel == 5);
  CHECK(o.blosc_shuffle == 1);
  CHECK(o.empty == EmptyPolicy::kOmit);
  CHECK(o.bad_slices == BadSlicePolicy::kError);
  CHECK(o.cache_dir.empty());
  CHECK(o.cache_size == 10ull << 30);
  CHECK(o.memory == 1ull << 30);
  CHECK(o.threads == 0);
  MountFlags f = FlagsOk("");
  CHECK(f.fuse_options.empty());
  CHECK(f.log_file.empty());
  CHECK(f.log_level == "info");
  CHECK_FALSE(f.foreground);
  CHECK(ParseOk(",,, ,") == Options{});
}

TEST_CASE("mount options: chunk, levels, threads") {
  CHECK(ParseOk("chunk=64").chunk == 64);
  CHECK(ParseOk("chunk=1").chunk == 1);
  CHECK(ParseOk("chunk=4096").chunk == 4096);
  CHECK(ParseOk("chunk=+32").chunk == 32);
  for (const char* bad : {"chunk=0", "chunk=-5", "chunk=abc", "chunk=4097", "chunk=", "chunk=12x", "chunk=1.5",
                          "chunk=99999999999999999999999"}) {
    std::string m = ParseError(bad);
    CHECK(Contains(m, std::string("option ") + bad + ":"));
    CHECK(Contains(m, "expected a positive integer from 1 to 4096"));
  }
  CHECK(ParseError("chunk=abc") == "option chunk=abc: expected a positive integer from 1 to 4096");
  CHECK(Contains(ParseError("chunk=5000"), "5000 is out of range"));
  CHECK(Contains(ParseError("chunk"), "option chunk needs a value: chunk=N"));

  CHECK(ParseOk("levels=1").levels == 1);
  CHECK(ParseOk("levels=32").levels == 32);
  CHECK(Contains(ParseError("levels=0"), "option levels=0:"));
  CHECK(Contains(ParseError("levels=33"), "from 1 to 32"));
  CHECK(Contains(ParseError("levels=x"), "option levels=x:"));

  CHECK(ParseOk("threads=0").threads == 0);
  CHECK(ParseOk("threads=16").threads == 16);
  CHECK(ParseOk("threads=1024").threads == 1024);
  CHECK(Contains(ParseError("threads=1025"), "option threads=1025:"));
  CHECK(Contains(ParseError("threads=-1"), "option threads=-1:"));
}

TEST_CASE("mount options: TIFF page, channel and time point") {
  const Options d = ParseOk("");
  CHECK(d.tiff_page == -1);
  CHECK(d.channel == -1);
  CHECK(d.time_point == -1);
  const Options o = ParseOk("page=2,channel=1,t=0");
  CHECK(o.tiff_page == 2);
  CHECK(o.channel == 1);
  CHECK(o.time_point == 0);
  CHECK(Contains(ParseError("page=-1"), "option page=-1:"));
  CHECK(Contains(ParseError("channel=x"), "option channel=x: expected a channel number"));
  CHECK(Contains(ParseError("t="), "option t=:"));
  CHECK(Contains(ParseError("t"), "option t needs a value: t=T"));
  const std::string help = OptionsHelpText();
  for (const char* name : {"page=N", "channel=C", "t=T", "TIFF SOURCE:"}) CHECK(Contains(help, name));
}

TEST_CASE("mount options: enumerated values") {
  CHECK(ParseOk("algorithm=mean").algorithm == Algorithm::kMean);
  CHECK(ParseOk("algorithm=nearest").algorithm == Algorithm::kNearest);
  CHECK(ParseOk("algorithm=max").algorithm == Algorithm::kMax);
  CHECK(ParseOk("algorithm=MAX").algorithm == Algorithm::kMax);
  CHECK(ParseOk("algorithm=gaussian").algorithm == Algorithm::kGaussian);
  CHECK(ParseError("algorithm=median") ==
        "option algorithm=median: expected one of mean, nearest, max, min, mode, gaussian");

  CHECK(ParseOk("bytes=1").bytes1);
  CHECK_FALSE(ParseOk("bytes=1,bytes=2").bytes1);
  CHECK(Contains(ParseError("bytes=3"), "option bytes=3: expected one of 1, 2"));

  CHECK(ParseOk("compression=blosc").compression == Compression::kBlosc);
  CHECK(ParseOk("compression=none").compression == Compression::kNone);
  CHECK(Contains(ParseError("compression=lzma"), "option compression=lzma:"));

  for (const char* c : {"blosclz", "lz4", "lz4hc", "zlib", "zstd"})
    CHECK(ParseOk(std::string("blosc_cname=") + c).blosc_cname == c);
  CHECK(ParseOk("blosc_cname=ZSTD").blosc_cname == "zstd");
  CHECK(Contains(ParseError("blosc_cname=snappy"), "option blosc_cname=snappy: expected one of blosclz"));

  CHECK(ParseOk("blosc_clevel=0").blosc_clevel == 0);
  CHECK(ParseOk("blosc_clevel=9").blosc_clevel == 9);
  CHECK(Contains(ParseError("blosc_clevel=10"), "option blosc_clevel=10:"));

  CHECK(ParseOk("blosc_shuffle=0").blosc_shuffle == 0);
  CHECK(ParseOk("blosc_shuffle=2").blosc_shuffle == 2);
  CHECK(ParseOk("blosc_shuffle=noshuffle").blosc_shuffle == 0);
  CHECK(ParseOk("blosc_shuffle=shuffle").blosc_shuffle == 1);
  CHECK(ParseOk("blosc_shuffle=bitshuffle").blosc_shuffle == 2);
  CHECK(Contains(ParseError("blosc_shuffle=3"), "option blosc_shuffle=3:"));

  CHECK(ParseOk("empty=keep").empty == EmptyPolicy::kKeep);
  CHECK(ParseOk("empty=omit").empty == EmptyPolicy::kOmit);
  CHECK(Contains(ParseError("empty=drop"), "option empty=drop: expected one of omit, keep"));

  CHECK(ParseOk("bad_slices=zero").bad_slices == BadSlicePolicy::kZero);
  CHECK(ParseOk("bad_slices=error").bad_slices == BadSlicePolicy::kError);
  CHECK(Contains(ParseError("bad_slices=skip"), "option bad_slices=skip:"));

  CHECK(FlagsOk("log_level=debug").log_level == "debug");
  CHECK(FlagsOk("log_level=warning").log_level == "warning");
  CHECK(FlagsOk("log_level=error").log_level == "error");
  CHECK(FlagsOk("log_level=info").log_level == "info");
  CHECK(Contains(ParseError("log_level=verbose"), "option log_level=verbose:"));
}

TEST_CASE("mount options: window slices in x, y, z order") {
  Options o = ParseOk("window=100:200,0:500,:");
  CHECK(o.window[2] == S(100, 200));  // x
  CHECK(o.window[1] == S(0, 500));    // y
  CHECK(o.window[0] == S(std::nullopt, std::nullopt));
  o = ParseOk("window=10:,:20,-5:");
  CHECK(o.window[2] == S(10, std::nullopt));
  CHECK(o.window[1] == S(std::nullopt, 20));
  CHECK(o.window[0] == S(-5, std::nullopt));
  o = ParseOk("window=-100:-10");  // fewer parts: y and z whole
  CHECK(o.window[2] == S(-100, -10));
  CHECK(o.window[1] == SliceRange{});
  CHECK(o.window[0] == SliceRange{});
  o = ParseOk("window=,,3:4");  // empty parts are whole axes
  CHECK(o.window[2] == SliceRange{});
  CHECK(o.window[0] == S(3, 4));
  CHECK(ParseOk("window=1:5:,2:6:1").window[1] == S(2, 6));  // step 1 is allowed
  CHECK(ParseOk("window=5:-5").window[2] == S(5, -5));       // emptiness depends on the size
  CHECK(ParseOk("window=").window == std::array<SliceRange, 3>{});

  CHECK(Contains(ParseError("window=0:10:2"), "step 1 only"));
  CHECK(Contains(ParseError("window=::2"), "step 1 only"));
  CHECK(Contains(ParseError("window=0:10:2"), "option window=0:10:2:"));
  CHECK(Contains(ParseError("window=5"), "expected start:stop"));
  CHECK(Contains(ParseError("window=0:10,a:b"), "y part 'a:b'"));
  CHECK(Contains(ParseError("window=0:10,O:30"), "option window=0:10,O:30: y part 'O:30'"));
  CHECK(Contains(ParseError("window=0:1,0:1,0:1,0:1"), "at most three parts"));
  CHECK(Contains(ParseError("window=10:5"), "empty"));
  CHECK(Contains(ParseError("window=-2:-5"), "empty"));
  CHECK(Contains(ParseError("window=1:2:3:4"), "option window="));
}

TEST_CASE("mount options: shift and voxel_size, stored z, y, x") {
  CHECK(ParseOk("shift=5,-3,0").shift == std::array<int64_t, 3>{0, -3, 5});
  CHECK(ParseOk("shift=0,0,-7").shift == std::array<int64_t, 3>{-7, 0, 0});
  CHECK(Contains(ParseError("shift=5,3"), "option shift=5,3: expected three integers"));
  CHECK(Contains(ParseError("shift=5/3/x"), "z value 'x'"));
  CHECK(Contains(ParseError("shift=5,3,x"), "option shift=5,3: expected three integers"));
  CHECK(Contains(ParseError("shift=1.5,0,0"), "option shift="));
  CHECK(Contains(ParseError("shift=99999999999999,0,0"), "out of range"));

  CHECK(ParseOk("voxel_size=7.91").voxel_size == std::array<double, 3>{7.91, 7.91, 7.91});
  CHECK(ParseOk("voxel_size=0.5,0.25,2").voxel_size == std::array<double, 3>{2, 0.25, 0.5});
  CHECK(ParseOk("voxel_size=1e-3").voxel_size[0] == 1e-3);
  for (const char* bad : {"voxel_size=0", "voxel_size=-1", "voxel_size=abc", "voxel_size=inf", "voxel_size=nan",
                          "voxel_size=1,2", "voxel_size=1,2,3,4", "voxel_size="}) {
    CHECK(Contains(ParseError(bad), std::string("option ") + bad + ":"));
  }
  CHECK(Contains(ParseError("voxel_size=1,0,1"), "y value '0'"));
}

TEST_CASE("mount options: the three comma forms give the same options") {
  const Options slash = ParseOk("window=100:200/0:500/:,shift=5/-3/0,voxel_size=7.91/7.91/2,chunk=64");
  const Options escaped = ParseOk(R"(window=100:200\,0:500\,:,shift=5\,-3\,0,voxel_size=7.91\,7.91\,2,chunk=64)");
  const Options plain = ParseOk("window=100:200,0:500,:,shift=5,-3,0,voxel_size=7.91,7.91,2,chunk=64");
  CHECK(slash == escaped);
  CHECK(slash == plain);
  CHECK(slash.window[2] == S(100, 200));
  CHECK(slash.window[1] == S(0, 500));
  CHECK(slash.shift == std::array<int64_t, 3>{0, -3, 5});
  CHECK(slash.voxel_size == std::array<double, 3>{2, 7.91, 7.91});
  CHECK(slash.chunk == 64);
  // A plain list value stops at known flags and name=value pieces.
  Parsed p = Parse("window=0:10,0:20,allow_other,voxel_size=4,ro,levels=3");
  REQUIRE(p.status.ok());
  CHECK(p.options.window[2] == S(0, 10));
  CHECK(p.options.window[1] == S(0, 20));
  CHECK(p.options.window[0] == SliceRange{});
  CHECK(p.options.voxel_size == std::array<double, 3>{4, 4, 4});
  CHECK(p.options.levels == 3);
  CHECK(p.flags.fuse_options == std::vector<std::string>{"allow_other"});
  // A misspelled flag after a list is an unknown option, not part of the list.
  CHECK(Contains(ParseError("window=0:10,allow_othr"), "unknown option 'allow_othr'"));
  // mount.fuse3 appends dev,suid after the user's options.
  CHECK(ParseOk("shift=1,2,3,dev,suid").shift == std::array<int64_t, 3>{3, 2, 1});
  // "\\" is a literal backslash; other backslashes are kept.
  CHECK(ParseOk(R"(cache=/tmp/a\\b\,c\d)").cache_dir == R"(/tmp/a\b,c\d)");
}

TEST_CASE("mount options: units") {
  CHECK(ParseOk("unit=micrometer").unit == "micrometer");
  CHECK(ParseOk("unit=Nanometer").unit == "nanometer");
  for (const char* u : {"angstrom",  "attometer",  "centimeter", "decimeter",  "exameter",  "femtometer", "foot",
                        "gigameter", "hectometer", "inch",       "kilometer",  "megameter", "meter",      "micrometer",
                        "mile",      "millimeter", "nanometer",  "parsec",     "petameter", "picometer",  "terameter",
                        "yard",      "yoctometer", "yottameter", "zeptometer", "zettameter"}) {
    CHECK(ParseOk(std::string("unit=") + u).unit == u);
  }
  CHECK(ParseOk("unit=micrometer,unit=").unit.empty());
  std::string m = ParseError("unit=um");
  CHECK(Contains(m, "option unit=um:"));
  CHECK(Contains(m, "did you mean 'micrometer'?"));
  CHECK(Contains(m, "micrometer, nanometer"));
  CHECK(Contains(ParseError("unit=microns"), "'micrometer'"));
  CHECK(Contains(ParseError("unit=micrometre"), "'micrometer'"));
  CHECK(Contains(ParseError("unit=second"), "option unit=second: not an OME-NGFF space unit"));
}

TEST_CASE("mount options: paths and sizes") {
  Options o = ParseOk("cache=/var/cache/oz,cache_size=500G,memory=4G");
  CHECK(o.cache_dir == "/var/cache/oz");
  CHECK(o.cache_size == 500ull << 30);
  CHECK(o.memory == 4ull << 30);
  CHECK(ParseOk("cache_size=0").cache_size == 0);
  CHECK(ParseOk("memory=16M").memory == 16ull << 20);
  std::string m = ParseError("memory=8M");
  CHECK(Contains(m, "option memory=8M:"));
  CHECK(Contains(m, "at least 16M"));
  CHECK(Contains(ParseError("memory=lots"), "option memory: invalid size 'lots'"));
  CHECK(Contains(ParseError("cache_size=-1G"), "option cache_size: invalid size '-1G': a size cannot be negative"));
  CHECK(FlagsOk("log=/var/log/oz.log").log_file == "/var/log/oz.log");
}

TEST_CASE("ParseByteSize table") {
  struct Row {
    const char* text;
    uint64_t bytes;
  };
  for (const Row& r : std::initializer_list<Row>{{"0", 0},
                                                 {"512", 512},
                                                 {"512B", 512},
                                                 {"512b", 512},
                                                 {"64K", 64 << 10},
                                                 {"64k", 64 << 10},
                                                 {"64KB", 64 << 10},
                                                 {"64KiB", 64 << 10},
                                                 {"64kib", 64 << 10},
                                                 {"10M", 10 << 20},
                                                 {"10 MiB", 10 << 20},
                                                 {"1.5G", 3ull << 29},
                                                 {"0.5k", 512},
                                                 {".5K", 512},
                                                 {"1.", 1},
                                                 {"2T", 2ull << 40},
                                                 {"3P", 3ull << 50},
                                                 {"15E", 15ull << 60},
                                                 {"1.0001K", 1024},  // rounded down
                                                 {"18446744073709551615", UINT64_MAX}}) {
    Result<uint64_t> v = ParseByteSize(r.text);
    INFO(r.text);
    REQUIRE(v.ok());
    CHECK(*v == r.bytes);
  }
  for (const char* bad : {"", " ", "abc", "-1", "-1G", "1X", "1KX", "1iB", "1 K B", "1.2.3", ".", "K", "1e3", "16E",
                          "18446744073709551616", "99999999999999999999999", "17179869184G", "0x10"}) {
    Result<uint64_t> v = ParseByteSize(bad);
    INFO(bad);
    REQUIRE_FALSE(v.ok());
    CHECK(v.status().code() == ErrorCode::kInvalidArgument);
    CHECK(Contains(v.status().message(), std::string("'") + bad + "'"));
  }
  CHECK(Contains(ParseByteSize("16E").status().message(), "too large"));
  CHECK(Contains(ParseByteSize("-5").status().message(), "negative"));
}

TEST_CASE("mount options: FUSE pass-through options") {
  MountFlags f = FlagsOk("allow_other,default_permissions,auto_unmount,max_read=131072,fsname=tiffs,subtype=omezarrfs");
  CHECK(f.fuse_options == std::vector<std::string>{"allow_other", "default_permissions", "auto_unmount",
                                                   "max_read=131072", "fsname=tiffs", "subtype=omezarrfs"});
  f = FlagsOk("max_threads=8,max_threads=16,allow_other,allow_other");
  CHECK(f.fuse_options == std::vector<std::string>{"max_threads=16", "allow_other"});
  CHECK(FlagsOk("allow_root").fuse_options == std::vector<std::string>{"allow_root"});
  CHECK(Contains(ParseError("allow_other,allow_root"), "allow_other and allow_root conflict"));
  CHECK(Contains(ParseError("max_read=0"), "option max_read=0:"));
  CHECK(Contains(ParseError("max_threads=lots"), "option max_threads=lots:"));
  CHECK(Contains(ParseError("fsname="), "option fsname=:"));
  CHECK(Contains(ParseError("allow_other=1"), "option allow_other=1: takes no value"));
  CHECK(Contains(ParseError("max_read"), "option max_read needs a value"));
  CHECK(JoinFuseOptions({"allow_other", R"(fsname=a,b\c)"}) == R"(allow_other,fsname=a\,b\\c)");
  CHECK(FlagsOk(R"(fsname=/data/a\,b)").fuse_options == std::vector<std::string>{"fsname=/data/a,b"});
}

TEST_CASE("mount options: ro, rw, fstab-only options") {
  CHECK(ParseOk("ro") == Options{});
  Parsed p = Parse(
      "defaults,ro,auto,noauto,nofail,_netdev,user,users,nouser,owner,exec,noexec,suid,nosuid,dev,"
      "nodev,noatime,relatime,x-systemd.automount,x-systemd.idle-timeout=60,comment=systemd.foo,"
      "user=alice,chunk=32");
  REQUIRE(p.status.ok());
  CHECK(p.options.chunk == 32);
  CHECK(p.flags.fuse_options.empty());
  // rw is accepted and ignored: mount(8) passes it by default; the mount is read-only anyway.
  CHECK(ParseOk("rw") == Options{});
  CHECK(ParseOk("chunk=32,rw").chunk == 32);
  CHECK(Contains(ParseError("ro=1"), "option ro takes no value"));
}

TEST_CASE("mount options: unknown options") {
  CHECK(ParseError("foo") == "unknown option 'foo' (see omezarrfs --help)");
  CHECK(ParseError("foo=1") == "unknown option 'foo' (see omezarrfs --help)");
  CHECK(ParseError("chunks=64") == "unknown option 'chunks'; did you mean 'chunk'? (see omezarrfs --help)");
  CHECK(Contains(ParseError("chunk=64,bogus"), "'bogus'"));
  CHECK(Contains(ParseError("allow_othr"), "did you mean 'allow_other'?"));
}

TEST_CASE("mount options: later options override earlier ones, errors change nothing") {
  Options o;
  MountFlags f;
  REQUIRE(ParseOptionString("chunk=64,levels=3,log_level=debug", &o, &f).ok());
  REQUIRE(ParseOptionString("chunk=32,window=1:2", &o, &f).ok());
  CHECK(o.chunk == 32);
  CHECK(o.levels == 3);
  CHECK(f.log_level == "debug");
  REQUIRE(ParseOptionString("window=:", &o, &f).ok());
  CHECK(o.window[2] == SliceRange{});
  REQUIRE(ParseOptionString("allow_other", &o, &f).ok());
  // allow_root conflicts with allow_other from an earlier call.
  CHECK_FALSE(ParseOptionString("allow_root", &o, &f).ok());

  const Options before_o = o;
  const MountFlags before_f = f;
  CHECK_FALSE(ParseOptionString("chunk=8,levels=2,bogus", &o, &f).ok());
  CHECK(o == before_o);
  CHECK(f.fuse_options == before_f.fuse_options);
  CHECK(f.log_level == before_f.log_level);
}

TEST_CASE("command line: positionals and flags in any order") {
  Result<CommandLine> r = Cmd(
      {"-f", "/data/tiffs", "-o", "chunk=64", "/mnt/zarr", "-oallow_other", "-s", "-o", "levels=3,window=0:10,0:20"});
  REQUIRE(r.ok());
  CHECK(r->source == "/data/tiffs");
  CHECK(r->mountpoint == "/mnt/zarr");
  CHECK(r->flags.foreground);
  CHECK(r->flags.single_thread);
  CHECK_FALSE(r->flags.debug);
  CHECK(r->options.chunk == 64);
  CHECK(r->options.levels == 3);
  CHECK(r->options.window[1] == S(0, 20));
  CHECK(r->flags.fuse_options == std::vector<std::string>{"allow_other"});
  CHECK_FALSE(r->help);

  r = Cmd({"src", "mnt", "-d"});
  REQUIRE(r.ok());
  CHECK(r->flags.debug);
  CHECK(r->flags.foreground);

  r = Cmd({"-fso", "chunk=16", "src", "mnt"});  // clustered flags, -o value in the next argument
  REQUIRE(r.ok());
  CHECK(r->flags.foreground);
  CHECK(r->flags.single_thread);
  CHECK(r->options.chunk == 16);

  r = Cmd({"src", "mnt", "-o", "chunk=64", "-o", "chunk=32"});  // later -o wins
  REQUIRE(r.ok());
  CHECK(r->options.chunk == 32);

  r = Cmd({"--", "-odd-source", "mnt"});
  REQUIRE(r.ok());
  CHECK(r->source == "-odd-source");
}

TEST_CASE("command line: help and version need no positionals") {
  for (const char* flag : {"-h", "--help"}) {
    Result<CommandLine> r = Cmd({flag});
    REQUIRE(r.ok());
    CHECK(r->help);
  }
  for (const char* flag : {"-V", "--version"}) {
    Result<CommandLine> r = Cmd({flag});
    REQUIRE(r.ok());
    CHECK(r->version);
  }
  Result<CommandLine> r = Cmd({"--help", "-o", "bogus", "a", "b", "c"});
  REQUIRE(r.ok());
  CHECK(r->help);
}

TEST_CASE("command line: errors name the argument") {
  auto error = [](std::vector<std::string> args) {
    Result<CommandLine> r = Cmd(std::move(args));
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == ErrorCode::kInvalidArgument);
    return r.status().message();
  };
  CHECK(Contains(error({}), "missing SOURCE and MOUNTPOINT"));
  CHECK(Contains(error({"-f"}), "missing SOURCE and MOUNTPOINT"));
  CHECK(Contains(error({"src"}), "missing MOUNTPOINT after SOURCE 'src'"));
  CHECK(Contains(error({"a", "b", "c"}), "unexpected argument 'c'"));
  CHECK(Contains(error({"a", "b", "-x"}), "unknown flag '-x'"));
  CHECK(Contains(error({"a", "b", "-fx"}), "unknown flag '-x' in '-fx'"));
  CHECK(Contains(error({"a", "b", "--bogus"}), "unknown flag '--bogus'"));
  CHECK(Contains(error({"a", "b", "-o"}), "-o needs a value"));
  CHECK(Contains(error({"a", "b", "-o", "chunk=abc"}), "option chunk=abc:"));
  CHECK(Contains(error({"a", "b", "-ofoo"}), "unknown option 'foo'"));
  CHECK(Contains(error({"", "b"}), "SOURCE is an empty string"));
  CHECK(Contains(error({"a", ""}), "MOUNTPOINT is an empty string"));
  // The first error is reported even when later arguments are fine.
  CHECK(Contains(error({"-o", "levels=0", "a", "b", "-o", "chunk=0"}), "levels=0"));
}

TEST_CASE("help text documents every option") {
  const std::string help = OptionsHelpText();
  for (const char* name : {"chunk=",
                           "levels=",
                           "algorithm=",
                           "window=",
                           "shift=",
                           "voxel_size=",
                           "unit=",
                           "bytes=",
                           "compression=",
                           "blosc_cname=",
                           "blosc_clevel=",
                           "blosc_shuffle=",
                           "empty=",
                           "bad_slices=",
                           "cache=",
                           "cache_size=",
                           "memory=",
                           "threads=",
                           "log=",
                           "log_level=",
                           "allow_other",
                           "allow_root",
                           "default_permissions",
                           "auto_unmount",
                           "max_read=",
                           "fsname=",
                           "subtype=",
                           "max_threads=",
                           " ro ",
                           "nofail",
                           "_netdev",
                           "x-*",
                           "comment=",
                           "-f ",
                           "-d ",
                           "-s ",
                           "--help",
                           "--version",
                           "micrometer",
                           "zettameter",
                           "noshuffle",
                           "bitshuffle"}) {
    INFO(name);
    CHECK(Contains(help, name));
  }
  for (const char* def :
       {"(default: 128)", "(default: 6)", "(default: mean)", "(default: 0,0,0)", "(default: 10G)", "(default: 1G)",
        "(default: lz4)", "(default: 5)", "(default: omit)", "(default: error)", "(default: info)"}) {
    INFO(def);
    CHECK(Contains(help, def));
  }
  // The three comma forms are documented.
  CHECK(Contains(help, "window=0:10/0:20/5:"));
  CHECK(Contains(help, R"(window=0:10\,0:20\,5:)"));
  CHECK(Contains(help, "window=0:10,0:20,5:"));
  // One-line entries that fit a terminal.
  size_t start = 0;
  while (start < help.size()) {
    size_t end = help.find('\n', start);
    if (end == std::string::npos) end = help.size();
    INFO(help.substr(start, end - start));
    CHECK(end - start <= 100);
    start = end + 1;
  }
}

}  // namespace
}  // namespace oz
