"""Group-robust objectives: GroupDRO and CVaR DRO, with the group-weight updates they share."""
