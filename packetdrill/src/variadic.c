/* The two variadic calls of packetdrill's interface. Every fcntl and ioctl
 * request we support carries at most one argument, an integer or a
 * pointer; both travel as a long. */
#include <stdarg.h>

int xdptcp_pd_fcntl_impl(void *userdata, int fd, int cmd, long arg);
int xdptcp_pd_ioctl_impl(void *userdata, int fd, unsigned long request, long arg);

int xdptcp_pd_fcntl(void *userdata, int fd, int cmd, ...)
{
	va_list ap;
	long arg;

	va_start(ap, cmd);
	arg = va_arg(ap, long);
	va_end(ap);
	return xdptcp_pd_fcntl_impl(userdata, fd, cmd, arg);
}

int xdptcp_pd_ioctl(void *userdata, int fd, unsigned long request, ...)
{
	va_list ap;
	long arg;

	va_start(ap, request);
	arg = va_arg(ap, long);
	va_end(ap);
	return xdptcp_pd_ioctl_impl(userdata, fd, request, arg);
}
