# Debian packages, one per install component (see the install() rules):
#   cmake -S . -B build-deb -DCMAKE_INSTALL_PREFIX=/usr -DBUILD_TESTING=OFF
#   cmake --build build-deb && (cd build-deb && cpack -G DEB)
# gives libredislock1 (the shared library), libredislock-dev (header, .so link, static
# library, pkg-config and CMake files) and redis-lock (the tool and its manual page).
# A prefix of /usr gives Debian's multiarch library directory (GNUInstallDirs).
if(NOT PROJECT_IS_TOP_LEVEL)
  return()
endif()

set(REDIS_LOCK_DEB_MAINTAINER
  "redis-lock maintainers <maintainers@users.noreply.r-seed-a7d0d02c.example>"
  CACHE STRING "Maintainer field of the Debian packages")

set(CPACK_PACKAGE_NAME redis-lock)
set(CPACK_PACKAGE_VENDOR "redis-lock")
set(CPACK_PACKAGE_VERSION ${PROJECT_VERSION})
set(CPACK_PACKAGING_INSTALL_PREFIX ${CMAKE_INSTALL_PREFIX})
set(CPACK_PACKAGE_DIRECTORY ${PROJECT_BINARY_DIR}/packages)
set(CPACK_COMPONENTS_ALL lib dev)
if(TARGET redis-lock)
  list(APPEND CPACK_COMPONENTS_ALL tool)
endif()

set(CPACK_STRIP_FILES ON) # as Debian ships binaries (the debug info stays in the build)
set(CPACK_DEB_COMPONENT_INSTALL ON)
set(CPACK_DEBIAN_FILE_NAME DEB-DEFAULT) # name_version_arch.deb
set(CPACK_DEBIAN_PACKAGE_MAINTAINER "${REDIS_LOCK_DEB_MAINTAINER}")
set(CPACK_DEBIAN_PACKAGE_PRIORITY optional)
set(CPACK_DEBIAN_PACKAGE_HOMEPAGE "https://github.com/ionelmc/python-redis-lock")
# Depends on libc6, libhiredis0.14 ... from what the binaries link (dpkg-shlibdeps); our
# own library is found in the package tree, and each package depends on it explicitly.
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS ON)
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS ON) # a shlibs file for packages built against us
set(CPACK_DEBIAN_PACKAGE_GENERATE_SHLIBS_POLICY ">=")
set(CPACK_DEBIAN_PACKAGE_SHLIBDEPS_PRIVATE_DIRS ${PROJECT_BINARY_DIR}) # where libredislock.so.1 is built
set(CPACK_DEBIAN_PACKAGE_CONTROL_STRICT_PERMISSION ON)

# Descriptions: the first line is the synopsis, the rest the extended description.
set(_rl_desc_tail
  "It speaks the wire protocol of python-redis-lock 4.x, so C programs, shell\nscripts and Python processes exclude each other on one lock.")
set(_rl_lib libredislock${PROJECT_VERSION_MAJOR})
set(_rl_exact "${_rl_lib} (= ${PROJECT_VERSION})")

set(CPACK_DEBIAN_LIB_PACKAGE_NAME ${_rl_lib})
set(CPACK_DEBIAN_LIB_PACKAGE_SECTION libs)
set(CPACK_DEBIAN_LIB_DESCRIPTION
  "distributed locks over Redis - shared library\nThe libredislock C library: locks with expiry, auto-renewal and fencing\ntokens, and a dogpile-safe cache, over a thread-safe connection pool.\n${_rl_desc_tail}")

set(CPACK_DEBIAN_DEV_PACKAGE_NAME libredislock-dev)
set(CPACK_DEBIAN_DEV_PACKAGE_SECTION libdevel)
list(JOIN RL_DEB_DEV_DEPENDS ", " _rl_dev_deps)
set(CPACK_DEBIAN_DEV_PACKAGE_DEPENDS "${_rl_exact}, ${_rl_dev_deps}")
set(CPACK_DEBIAN_DEV_PACKAGE_SHLIBDEPS OFF) # no binaries of its own
set(CPACK_DEBIAN_DEV_DESCRIPTION
  "distributed locks over Redis - development files\nThe header, static library, pkg-config file (redis-lock) and CMake package\n(find_package(redis_lock)) for building against libredislock.\n${_rl_desc_tail}")

set(CPACK_DEBIAN_TOOL_PACKAGE_NAME redis-lock)
set(CPACK_DEBIAN_TOOL_PACKAGE_SECTION utils)
set(CPACK_DEBIAN_TOOL_PACKAGE_DEPENDS "${_rl_exact}")
set(CPACK_DEBIAN_TOOL_DESCRIPTION
  "distributed locks over Redis - command-line tool\nredis-lock runs a command under a lock (flock(1) across machines), caches a\ncommand's output, and takes, releases, inspects and resets locks from the shell.\n${_rl_desc_tail}")

include(CPack)
