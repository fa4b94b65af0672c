# Writes a man page from a roff template and a program's --help text (cmake -P, at build time):
#   cmake -DPROGRAM=exe -DTEMPLATE=x.1.in -DOUTPUT=x.1 -DVERSION=v [-DFSTAB=file] -P manpage.cmake
# @HELP@ becomes the --help text, @FSTAB@ the non-comment lines of FSTAB, both verbatim (for
# .nf blocks): backslashes and hyphens escaped, lines starting with '.' or '\'' protected.
function(roff_verbatim text out)
  string(REPLACE "\\" "\\e" text "${text}")
  string(REPLACE "-" "\\-" text "${text}")
  string(REGEX REPLACE "(^|\n)([.'])" "\\1\\\\&\\2" text "${text}")
  string(REGEX REPLACE "\n+$" "" text "${text}")
  set(${out} "${text}" PARENT_SCOPE)
endfunction()

execute_process(COMMAND "${PROGRAM}" --help OUTPUT_VARIABLE help RESULT_VARIABLE rc
                ENCODING UTF8)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${PROGRAM} --help failed (${rc})")
endif()
roff_verbatim("${help}" HELP)
set(FSTAB_LINES "")
if(FSTAB)
  file(STRINGS "${FSTAB}" lines)
  foreach(l IN LISTS lines)
    if(NOT l MATCHES "^#" AND NOT l STREQUAL "")
      string(APPEND FSTAB_LINES "${l}\n")
    endif()
  endforeach()
endif()
roff_verbatim("${FSTAB_LINES}" FSTAB)
configure_file("${TEMPLATE}" "${OUTPUT}" @ONLY)
