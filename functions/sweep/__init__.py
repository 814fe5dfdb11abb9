"""The reservation sweep: settles reservations orphaned by a killed Api function."""
