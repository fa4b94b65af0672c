# Part of `cmake --install` (install(SCRIPT) from the top-level CMakeLists.txt): writes the files
# that name installed paths, so that the prefix given at install time is the one they name:
#   <unit dir>/omezarrfs@.service, omezarr-serve@.service   systemd template units
#   <helper dir>/mount.fuse.omezarrfs                         mount(8) helper for fuse.omezarrfs
# Inputs (set by install(CODE)): OZ_SOURCE_DIR OZ_BINDIR OZ_UNIT_DIR OZ_HELPER_DIR OZ_MOUNT_FUSE3
# OZ_WITH_FUSE.
set(BINDIR "${CMAKE_INSTALL_PREFIX}/${OZ_BINDIR}")
set(MOUNT_FUSE3 "${OZ_MOUNT_FUSE3}")
if(IS_ABSOLUTE "${OZ_UNIT_DIR}")
  set(unit_dir "${OZ_UNIT_DIR}")
else()
  set(unit_dir "${CMAKE_INSTALL_PREFIX}/${OZ_UNIT_DIR}")
endif()

# Writes TEMPLATE (with @BINDIR@ and @MOUNT_FUSE3@ filled in) to DESTDIR + FILE, as install()
# would: a status line and an entry in install_manifest.txt.
function(oz_install_generated template file mode)
  set(dest "$ENV{DESTDIR}${file}")
  message(STATUS "Installing: ${dest}")
  configure_file("${OZ_SOURCE_DIR}/${template}" "${dest}" @ONLY)
  file(CHMOD "${dest}" PERMISSIONS ${mode})
  set(CMAKE_INSTALL_MANIFEST_FILES ${CMAKE_INSTALL_MANIFEST_FILES} "${file}" PARENT_SCOPE)
endfunction()

set(read_perms OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ)
set(exec_perms OWNER_READ OWNER_WRITE OWNER_EXECUTE GROUP_READ GROUP_EXECUTE WORLD_READ WORLD_EXECUTE)
if(OZ_WITH_FUSE)  # omezarr-serve@ serves the mount of omezarrfs@ (BindsTo=)
  oz_install_generated(systemd/omezarrfs@.service.in "${unit_dir}/omezarrfs@.service" "${read_perms}")
  oz_install_generated(systemd/omezarr-serve@.service.in "${unit_dir}/omezarr-serve@.service" "${read_perms}")
endif()

if(OZ_WITH_FUSE AND NOT OZ_HELPER_DIR STREQUAL "")
  # The helper lives outside the prefix (mount(8) only looks in /sbin). A non-root install to a
  # private prefix cannot write there: say so instead of failing the whole install.
  execute_process(COMMAND test -w "$ENV{DESTDIR}${OZ_HELPER_DIR}" RESULT_VARIABLE not_writable)
  if(NOT "$ENV{DESTDIR}" STREQUAL "" OR not_writable EQUAL 0)
    oz_install_generated(systemd/mount.fuse.omezarrfs.in "${OZ_HELPER_DIR}/mount.fuse.omezarrfs" "${exec_perms}")
  else()
    message(WARNING "Not installing ${OZ_HELPER_DIR}/mount.fuse.omezarrfs (not writable). "
                    "mount -t fuse.omezarrfs then works only if ${BINDIR} is one of "
                    "/usr/local/bin, /usr/bin, /bin (mount.fuse3 finds omezarrfs on the default PATH).")
  endif()
endif()
