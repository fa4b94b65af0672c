// JPEG through libjpeg's C API. libjpeg reports errors through error_exit, which must not return:
// it longjmps back into the one function that called setjmp. Those functions hold only C objects
// (no destructors are skipped) and copy results into C++ strings after libjpeg is done.
#include "core/codec/jpeg.h"

#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <jpeglib.h>

namespace oz {
namespace {

struct ErrorManager {
  jpeg_error_mgr pub;
  std::jmp_buf jump;
  char message[JMSG_LENGTH_MAX];
};

[[noreturn]] void OnError(j_common_ptr cinfo) {
  auto* e = reinterpret_cast<ErrorManager*>(cinfo->err);
  (*cinfo->err->format_message)(cinfo, e->message);
  std::longjmp(e->jump, 1);
}

void OnMessage(j_common_ptr) {}  // warnings (e.g. "premature end of data") are not printed

// Returns false with `err->message` on a libjpeg error. *out is malloc'ed by libjpeg (free it,
// also after an error).
bool Encode(const uint8_t* pixels, uint32_t width, uint32_t height, int quality, unsigned char** out,
            unsigned long* out_size, ErrorManager* err) {
  jpeg_compress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = OnError;
  err->pub.output_message = OnMessage;
  if (setjmp(err->jump)) {
    jpeg_destroy_compress(&cinfo);
    return false;
  }
  jpeg_create_compress(&cinfo);
  jpeg_mem_dest(&cinfo, out, out_size);
  cinfo.image_width = width;
  cinfo.image_height = height;
  cinfo.input_components = 1;
  cinfo.in_color_space = JCS_GRAYSCALE;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, quality, TRUE);
  cinfo.optimize_coding = TRUE;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_compress(&cinfo, TRUE);
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(pixels + static_cast<size_t>(cinfo.next_scanline) * width);
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  jpeg_destroy_compress(&cinfo);
  return true;
}

// 0: ok; 1: libjpeg error (err->message); 2: other dimensions (err->message).
int Decode(const unsigned char* data, unsigned long size, uint32_t width, uint32_t height, uint8_t* out,
           ErrorManager* err) {
  jpeg_decompress_struct cinfo;
  cinfo.err = jpeg_std_error(&err->pub);
  err->pub.error_exit = OnError;
  err->pub.output_message = OnMessage;
  if (setjmp(err->jump)) {
    jpeg_destroy_decompress(&cinfo);
    return 1;
  }
  jpeg_create_decompress(&cinfo);
  jpeg_mem_src(&cinfo, data, size);
  jpeg_read_header(&cinfo, TRUE);
  if (cinfo.image_width != width || cinfo.image_height != height) {
    std::snprintf(err->message, sizeof err->message, "image is %ux%u, expected %ux%u", cinfo.image_width,
                  cinfo.image_height, width, height);
    jpeg_destroy_decompress(&cinfo);
    return 2;
  }
  cinfo.out_color_space = JCS_GRAYSCALE;
  cinfo.dct_method = JDCT_ISLOW;
  jpeg_start_decompress(&cinfo);
  if (cinfo.output_components != 1 || cinfo.output_width != width) {
    std::snprintf(err->message, sizeof err->message, "decoder output is not %u one-byte pixels wide", width);
    jpeg_destroy_decompress(&cinfo);
    return 2;
  }
  while (cinfo.output_scanline < cinfo.output_height) {
    JSAMPROW row = out + static_cast<size_t>(cinfo.output_scanline) * width;
    jpeg_read_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_decompress(&cinfo);
  jpeg_destroy_decompress(&cinfo);
  return 0;
}

}  // namespace

Result<std::string> JpegEncodeGray(const uint8_t* pixels, uint32_t width, uint32_t height, int quality) {
  if (width == 0 || height == 0 || width > kJpegMaxDimension || height > kJpegMaxDimension)
    return InvalidArgumentError("a JPEG image is 1 to " + std::to_string(kJpegMaxDimension) +
                                " pixels on each side, not " + std::to_string(width) + "x" + std::to_string(height));
  if (quality < 1 || quality > 100)
    return InvalidArgumentError("jpeg_quality must be 1..100, got " + std::to_string(quality));
  ErrorManager err;
  err.message[0] = '\0';
  unsigned char* buf = nullptr;
  unsigned long size = 0;
  const bool ok = Encode(pixels, width, height, quality, &buf, &size, &err);
  std::string out;
  if (ok && buf) out.assign(reinterpret_cast<const char*>(buf), size);
  std::free(buf);
  if (!ok) return InternalError(std::string("JPEG encoding failed: ") + err.message);
  return out;
}

Status JpegDecodeGray(std::string_view data, uint32_t width, uint32_t height, uint8_t* out) {
  ErrorManager err;
  err.message[0] = '\0';
  const int rc = Decode(reinterpret_cast<const unsigned char*>(data.data()), static_cast<unsigned long>(data.size()),
                        width, height, out, &err);
  if (rc != 0) return CorruptError(std::string("JPEG data: ") + err.message);
  return OkStatus();
}

std::string JpegLibraryTag() {
#ifdef LIBJPEG_TURBO_VERSION_NUMBER
  const int v = LIBJPEG_TURBO_VERSION_NUMBER;
  return "libjpeg-turbo " + std::to_string(v / 1000000) + "." + std::to_string(v / 1000 % 1000) + "." +
         std::to_string(v % 1000);
#else
  return "libjpeg " + std::to_string(JPEG_LIB_VERSION);
#endif
}

}  // namespace oz
